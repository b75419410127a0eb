"""`ivadas up`: the whole system on this machine.

1. For each model kind without an approved version: train (the synthetic demo unless `--data`),
   through the local pipeline, and approve the result — labelled as the demo when it is one.
2. One endpoint server per model kind, serving the approved bundle (SageMaker hosting contract).
3. The SageMaker-runtime-compatible route (its own port), and the API gateway: the predict Lambda
   as API Gateway would call it, plus the UI.
4. A watcher: when the served version of a kind changes in the registry, the endpoint switches to
   it with a graceful worker reload (SIGHUP): requests in flight finish on the old model.
Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from inference.bundle import extract_bundle
from inference.kinds import MODEL_KINDS
from pipelines.definition import model_package_group
from pipelines.local_runner import LocalPipeline, RunParameters, source_revision
from pipelines.registry import APPROVED, LocalRegistry, ModelVersion

DEMO_CLASSES = ("tiles", "fabric", "wood")
DEMO_APPROVAL = "demo: approved automatically by `ivadas up` (synthetic data)"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StackSettings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8000
    runtime_port: int = 8090
    endpoint_base_port: int = 8081
    data: Path | None = None
    classes: tuple[str, ...] = ()
    backbone: str | None = None
    weights: str | None = None
    pipeline: str = "ivadas-training"
    default_model: str = "patchcore"
    gateway_workers: int = 4
    endpoint_workers: int = 1
    poll_seconds: float = 2.0
    echo: object = print
    extra_env: dict = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runtime_url(self) -> str:
        return f"http://{self.host}:{self.runtime_port}"

    def endpoint_name(self, kind: str) -> str:
        return f"ivadas-{kind}"


class LocalStack:
    def __init__(self, settings: StackSettings):
        self.settings = settings
        self.registry = LocalRegistry(settings.store)
        self.processes: dict[str, subprocess.Popen] = {}
        self.serving: dict[str, str] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # --------------------------------------------------------------------------- models

    def ensure_models(self) -> dict[str, ModelVersion]:
        served = {}
        for kind in MODEL_KINDS:
            group = model_package_group(self.settings.pipeline, kind)
            version = self.registry.served(group)
            if version is None:
                version = self._train_and_approve(kind)
            served[kind] = version
        return served

    def _train_and_approve(self, kind: str) -> ModelVersion:
        s = self.settings
        demo = s.data is None
        data = s.home / "demo-data" if demo else Path(s.data)
        if demo and not (data / DEMO_CLASSES[0]).is_dir():
            from pipelines.vision.synthetic import generate

            s.echo(f"generating the synthetic demo dataset in {data} ...")
            generate(data, DEMO_CLASSES)
        from pipelines.vision.datasets import list_classes

        classes = tuple(s.classes) or (DEMO_CLASSES if demo else tuple(list_classes(data)))
        backbone = s.backbone or ("resnet18" if demo else "wide_resnet50_2")
        weights = s.weights or ("auto-or-random" if demo else "auto")
        s.echo(f"no approved {kind} model: training one on {'the DEMO data' if demo else data} "
               f"({', '.join(classes)}; backbone {backbone}) ...")
        pipeline = LocalPipeline(s.store, s.pipeline, echo=lambda line: s.echo("  " + line))
        record = pipeline.run(RunParameters(str(data.resolve()), classes, kind, backbone, weights,
                                            source_revision=source_revision()))
        group, number = record["registered_version"].rsplit("/", 1)
        reason = DEMO_APPROVAL if demo else "approved by `ivadas up` after the local pipeline passed its gate"
        return self.registry.set_status(group, int(number), APPROVED, reason)

    def stage(self, kind: str, version: ModelVersion) -> Path:
        """Extract the version's bundle and point `serving/<kind>/current` at it (atomic rename)."""
        base = self.settings.store / "serving" / kind
        target = base / f"v{version.version}"
        if not (target / "manifest.json").is_file():
            extract_bundle(version.model_url, target)
        (target / ".ivadas-version").write_text(version.id)
        (target / ".ivadas-metrics.json").write_text(json.dumps(version.metrics))
        link = base / "current"
        staging = base / f".current-{os.getpid()}"
        if staging.is_symlink() or staging.exists():
            staging.unlink()
        staging.symlink_to(target.name)
        staging.replace(link)
        self.serving[kind] = version.id
        return link

    # ------------------------------------------------------------------------ processes

    def start(self) -> None:
        s = self.settings
        ports = {kind: s.endpoint_base_port + i for i, kind in enumerate(MODEL_KINDS)}
        for port in [s.port, s.runtime_port, *ports.values()]:
            _require_free_port(s.host, port)
        served = self.ensure_models()
        logs = s.store / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for kind, version in served.items():
            link = self.stage(kind, version)
            env = {"IVADAS_MODEL_DIR": str(link), "SAGEMAKER_BIND_HOST": s.host, "SAGEMAKER_BIND_TO_PORT": str(ports[kind]),
                   "SAGEMAKER_MODEL_SERVER_WORKERS": str(s.endpoint_workers)}
            self.processes[kind] = self._spawn([sys.executable, "-m", "inference.serve"], env, logs / f"endpoint-{kind}.log")
        endpoints = {s.endpoint_name(kind): f"{s.host}:{port}" for kind, port in ports.items()}
        for kind, port in ports.items():
            _wait_healthy(f"http://{s.host}:{port}/ping", self.processes[kind], f"the {kind} endpoint", logs / f"endpoint-{kind}.log")
        runtime_env = {"IVADAS_GATEWAY_ROLE": "runtime", "IVADAS_HOST": s.host, "IVADAS_PORT": str(s.runtime_port),
                       "IVADAS_LOCAL_ENDPOINTS": json.dumps(endpoints)}
        self.processes["runtime"] = self._spawn([sys.executable, "-m", "infra.local.serve_gateway"], runtime_env, logs / "runtime.log")
        gateway_env = {
            "IVADAS_GATEWAY_ROLE": "api", "IVADAS_HOST": s.host, "IVADAS_PORT": str(s.port),
            "IVADAS_GATEWAY_WORKERS": str(s.gateway_workers), "IVADAS_UI_DIR": str(ROOT / "ui"),
            "ENDPOINT_NAMES": json.dumps({kind: s.endpoint_name(kind) for kind in MODEL_KINDS}),
            "DEFAULT_MODEL": s.default_model,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": s.runtime_url, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "INSPECTION_LOG": "sqlite", "INSPECTION_DB": str(s.store / "inspections" / "inspections.sqlite"),
            "INSPECTION_IMAGE_DIR": str(s.store / "inspections" / "images"), "STORE_ANOMALOUS_IMAGES": "true",
            "POWERTOOLS_SERVICE_NAME": "ivadas-api", "POWERTOOLS_METRICS_NAMESPACE": "IVADAS",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        self.processes["gateway"] = self._spawn([sys.executable, "-m", "infra.local.serve_gateway"], gateway_env, logs / "gateway.log")
        _wait_healthy(f"{s.url}/health", self.processes["gateway"], "the gateway", logs / "gateway.log")
        self._watcher = threading.Thread(target=self._watch, name="registry-watcher", daemon=True)
        self._watcher.start()

    def _spawn(self, command, env: dict, log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(command, env={**os.environ, **self.settings.extra_env, **env}, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.poll_seconds):
            for kind in MODEL_KINDS:
                try:
                    self._follow_registry(kind)
                except Exception as exc:  # keep serving the current model; say why the swap did not happen
                    self.settings.echo(f"could not switch the {kind} endpoint: {exc}")

    def _follow_registry(self, kind: str) -> None:
        version = self.registry.served(model_package_group(self.settings.pipeline, kind))
        if version is None or version.id == self.serving.get(kind):
            return
        self.stage(kind, version)
        self.processes[kind].send_signal(signal.SIGHUP)  # new workers load it; old ones finish their requests
        self.settings.echo(f"{kind} endpoint switching to {version.id}")

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    def summary(self) -> str:
        lines = [f"IVADAS is running at {self.settings.url}  (UI: {self.settings.url}/, API: POST {self.settings.url}/predict)"]
        for kind in MODEL_KINDS:
            version = self.registry.get(*_split(self.serving[kind]))
            auroc = version.metrics.get("mean", {}).get("image_auroc")
            demo = any(h["reason"] == DEMO_APPROVAL for h in version.history)
            lines.append(f"  {kind}: {version.id}{' (DEMO)' if demo else ''}, classes {version.metadata.get('classes')}, "
                         f"backbone {version.metadata.get('backbone')}, mean image AUROC "
                         + ("n/a" if auroc is None else f"{auroc:.3f}"))
            weights = self._backbone_weights(kind)
            if weights.startswith("random"):
                lines.append(f"  WARNING: the {kind} backbone has RANDOM weights (no ImageNet weights were available): "
                             "fine for the synthetic demo, near chance on real images")
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    def _backbone_weights(self, kind: str) -> str:
        manifest = json.loads((self.settings.store / "serving" / kind / "current" / "manifest.json").read_text())
        return manifest["backbone"]["weights"]


def _split(version_id: str) -> tuple[str, int]:
    group, number = version_id.rsplit("/", 1)
    return group, int(number)


def _require_free_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is not "in use"
        try:
            probe.bind((host, port))
        except OSError:
            raise RuntimeError(f"port {port} on {host} is in use; stop what uses it or choose another with --port") from None


def _wait_healthy(url: str, process: subprocess.Popen, what: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} stopped while starting; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become healthy within {timeout_s:.0f} s; see {log}")


def run_until_interrupted(settings: StackSettings) -> int:
    stack = LocalStack(settings)
    try:
        stack.start()
        settings.echo(stack.summary())
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        settings.echo("a server stopped unexpectedly; see the logs in " + str(settings.store / "logs"))
        return 1
    except KeyboardInterrupt:
        settings.echo("stopping ...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave servers behind
        stack.stop()
