"""`ivadas up`: the whole system on this machine.

1. For each demo model kind (or, with `--data`, each kind of that data's modality) without an
   approved version: train through the local pipeline and approve the result — labelled as the
   demo when it is one.
2. One endpoint server per model kind that has an approved version (SageMaker hosting contract).
3. The SageMaker-runtime-compatible route (its own port), and the API gateway: the predict Lambda
   as API Gateway would call it, plus the UI.
4. A watcher: when the served version of a kind changes in the registry, the endpoint switches to
   it with a graceful worker reload (SIGHUP): requests in flight finish on the old model; a kind
   approved for the first time gets its endpoint started.

Ctrl-C, SIGTERM (`docker stop`, systemd, `timeout`) and SIGHUP (the terminal closed) stop every
server before `ivadas up` exits; if `ivadas up` dies without stopping them (SIGKILL, OOM killer),
the servers stop on their own (see `lifeline.py`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from inference.bundle import extract_bundle
from inference.kinds import DEFAULT_KINDS, MODEL_KINDS, kind_info, kinds_of
from pipelines.definition import model_package_group
from pipelines.local_runner import LocalPipeline, RunParameters, source_revision
from pipelines.registry import APPROVED, LocalRegistry, ModelVersion

from .lifeline import Lifeline

DEMO_APPROVAL = "demo: approved automatically by `ivadas up` (synthetic data)"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Demo:
    """The built-in demo of one modality: its data, the kinds trained on it and their settings."""

    folder: str
    classes: tuple[str, ...]
    kinds: tuple[str, ...]
    settings: dict
    #: `module:function` writing the data: function(root, classes)
    generator: str
    #: the quality gate of the demo's training: mean image AUROC for images; row AUROC for sensors,
    #: where the first rows of a slowly growing fault look normal to any model
    gate: float = 0.9

    def generate(self, root: Path) -> None:
        """Write the demo data to `root`, all or nothing: a run stopped while generating leaves no
        half dataset that the next run would train on."""
        import importlib

        module, _, function = self.generator.partition(":")
        partial = root.with_name(f".{root.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        getattr(importlib.import_module(module), function)(partial, self.classes)
        partial.rename(root)  # replaces an empty `root`, the only kind this is called on


#: What `ivadas up` trains when nothing is approved yet. Random backbone weights are a loud
#: fallback: fine for the synthetic images, useless on real ones.
DEMOS = {
    "image": Demo("demo-data", ("tiles", "fabric", "wood"), ("patchcore", "softpatch"),
                  {"backbone": "resnet18", "weights": "auto-or-random"}, "pipelines.vision.synthetic:generate"),
    "sensors": Demo("demo-sensors", ("pump-1",), (DEFAULT_KINDS["sensors"],), {}, "pipelines.sensors.synthetic:generate",
                    gate=0.7),
}
#: Settings for a user's own data (`--data`): the kinds' defaults, with ImageNet weights required.
USER_DATA_SETTINGS = {"image": {"backbone": "wide_resnet50_2", "weights": "auto"}}


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
    #: the modality of `data` (the demo trains every modality in DEMOS)
    data_modality: str = "image"
    gateway_workers: int = 4
    endpoint_workers: int = 1
    poll_seconds: float = 2.0
    #: seconds between runs of the sensor feed (files dropped under sensors/<asset>/incoming/)
    feed_seconds: float = 2.0
    #: replay the sensor demo's evaluation period into the feed, as a live machine would send it
    replay_demo: bool = True
    #: seconds between monitoring passes (drift, anomaly rate, confirmed quality; POST /monitoring/run asks for one now)
    monitor_seconds: float = 900.0
    #: `--auth`: sign-in and station keys from `home/auth.json` (infra/local/auth.py), enforced by the
    #: predict Lambda's own access rules; off, the stack is open to whoever reaches its loopback port
    auth: bool = False
    echo: object = None  # default: print each line at once, so a log shows progress as it happens
    extra_env: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.echo is None:
            self.echo = _print_now

    @property
    def store(self) -> Path:
        return self.home / "store"

    @property
    def auth_file(self) -> Path:
        return self.home / "auth.json"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runtime_url(self) -> str:
        return f"http://{self.host}:{self.runtime_port}"

    def endpoint_name(self, kind: str) -> str:
        return f"ivadas-{kind}"

    @property
    def endpoints_file(self) -> Path:
        """Endpoint name → host:port of every running endpoint, read by the runtime route."""
        return self.store / "serving" / "endpoints.json"

    def default_models(self) -> dict[str, str]:
        """The kind `POST /predict` uses when a request names none, per modality of its input."""
        defaults = {modality: demo.kinds[0] for modality, demo in DEMOS.items()}
        defaults[kind_info(self.default_model).modality] = self.default_model
        return defaults


class LocalStack:
    def __init__(self, settings: StackSettings):
        self.settings = settings
        self.registry = LocalRegistry(settings.store)
        self.processes: dict[str, subprocess.Popen] = {}
        self.serving: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lifeline = Lifeline()
        self._replays: list = []
        self._upload_secret = secrets.token_hex(32)  # signs the local upload forms (S3 presigned POSTs on AWS)

    # --------------------------------------------------------------------------- models

    def ensure_models(self) -> dict[str, ModelVersion]:
        """The served version of every kind to serve: the demo's (or the data's) kinds, trained and
        approved here if nothing is approved yet, and any other kind that already has an approval."""
        s = self.settings
        wanted = self._kinds_to_train()
        served = {}
        for kind in MODEL_KINDS:
            version = self.registry.served(model_package_group(s.pipeline, kind))
            if version is None and kind in wanted:
                version = self._train_and_approve(kind, wanted[kind])
            if version is not None:
                served[kind] = version
        return served

    def _kinds_to_train(self) -> dict[str, str]:
        """Kind → modality of every kind trained here when it has no approved version: with `--data`,
        the kinds of the data's modality; else the kinds of every demo that has a chosen class."""
        s = self.settings
        if s.data is not None:
            kinds = DEMOS[s.data_modality].kinds if s.data_modality in DEMOS else kinds_of(s.data_modality)
            return {kind: s.data_modality for kind in kinds}
        every_demo_class = [name for demo in DEMOS.values() for name in demo.classes]
        unknown = [name for name in s.classes if name not in every_demo_class]
        if unknown:
            raise ValueError(f"the demo has no class {', '.join(map(repr, unknown))}; its classes are "
                             f"{', '.join(every_demo_class)} (use --data DIR to train on your own data)")
        return {kind: modality for modality, demo in DEMOS.items() if self._demo_classes(modality) for kind in demo.kinds}

    def _demo_classes(self, modality: str) -> tuple[str, ...]:
        """The classes of the modality's demo to train: those chosen with `--classes`, else all."""
        demo = DEMOS[modality]
        chosen = self.settings.classes
        return tuple(name for name in chosen if name in demo.classes) if chosen else demo.classes

    def _train_and_approve(self, kind: str, modality: str) -> ModelVersion:
        s = self.settings
        demo = s.data is None
        if demo:
            data = s.home / DEMOS[modality].folder
            if not data.is_dir() or not any(data.iterdir()):
                s.echo(f"generating the synthetic {modality} demo dataset in {data} ...")
                DEMOS[modality].generate(data)
            settings = dict(DEMOS[modality].settings)
        else:
            data = Path(s.data)
            settings = dict(USER_DATA_SETTINGS.get(modality, {}))
        if modality == "image":
            settings.update({k: v for k, v in (("backbone", s.backbone), ("weights", s.weights)) if v})
        from pipelines.modalities import modality as modality_module

        classes = self._demo_classes(modality) if demo else tuple(s.classes) or tuple(modality_module(modality).list_classes(data))
        s.echo(f"no approved {kind} model: training one on {'the DEMO data' if demo else data} ({', '.join(classes)}"
               + (f"; backbone {settings['backbone']}" if "backbone" in settings else "") + ") ...")
        pipeline = LocalPipeline(s.store, s.pipeline, echo=lambda line: s.echo("  " + line))
        gate = {"gate": DEMOS[modality].gate} if demo else {}
        record = pipeline.run(RunParameters(str(data.resolve()), classes, kind, settings, source_revision=source_revision(), **gate))
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
        for port in (s.port, s.runtime_port):
            _require_free_port(s.host, port)
        served = self.ensure_models()
        if not served:
            raise RuntimeError("no model kind has an approved version to serve")
        self._write_endpoints()
        for kind, version in served.items():
            self._start_endpoint(kind, version)
        for kind in served:
            _wait_healthy(f"http://{s.host}:{self.ports[kind]}/ping", self.processes[kind], f"the {kind} endpoint",
                          self._log(f"endpoint-{kind}"))
        runtime_env = {"IVADAS_GATEWAY_ROLE": "runtime", "IVADAS_HOST": s.host, "IVADAS_PORT": str(s.runtime_port),
                       "IVADAS_LOCAL_ENDPOINTS_FILE": str(s.endpoints_file),
                       # data capture as the deploy Lambda sets it up on AWS: what the monitor reads of direct calls
                       "IVADAS_CAPTURE_DIR": str(s.store / "data-capture"),
                       "ENDPOINT_NAMES": json.dumps({kind: s.endpoint_name(kind) for kind in MODEL_KINDS})}
        self.processes["runtime"] = self._spawn("infra.local.serve_gateway", runtime_env, self._log("runtime"))
        self.processes["gateway"] = self._spawn("infra.local.serve_gateway", self._lambda_env(), self._log("gateway"))
        # runs the trainings and trials the API queues, as SageMaker does on AWS
        self.processes["training-worker"] = self._spawn("infra.local.training_worker", self._lambda_env(),
                                                        self._log("training-worker"))
        # the monitoring job, as the scheduled Processing job on AWS: report under store/monitoring/latest
        self.processes["monitor"] = self._spawn("infra.local.serve_monitor", {
            **self._lambda_env(), "MONITOR_STORE_ROOT": str(s.store), "MONITOR_INTERVAL_S": str(s.monitor_seconds)},
            self._log("monitor"))
        if any(kind_info(kind).modality == "sensors" for kind in served):
            self._start_sensor_feed()  # before the gateway answers: once it does, every server is running
        _wait_healthy(f"{s.url}/health", self.processes["gateway"], "the gateway", self._log("gateway"))
        self._watcher = threading.Thread(target=self._watch, name="registry-watcher", daemon=True)
        self._watcher.start()

    def _lambda_env(self) -> dict:
        """What the predict Lambda and the sensor feed Lambda find in their environment here."""
        s = self.settings
        return {
            "IVADAS_GATEWAY_ROLE": "api", "IVADAS_HOST": s.host, "IVADAS_PORT": str(s.port),
            "IVADAS_GATEWAY_WORKERS": str(s.gateway_workers), "IVADAS_UI_DIR": str(ROOT / "ui"),
            "SENSOR_STORE": str(s.store), "SENSOR_FEED_INTERVAL_S": str(s.feed_seconds),
            "MONITORING_STORE": str(s.store / "monitoring"),
            **self._lifecycle_env(),
            "ENDPOINT_NAMES": json.dumps({kind: s.endpoint_name(kind) for kind in MODEL_KINDS}),
            "MODEL_MODALITIES": json.dumps({kind: kind_info(kind).modality for kind in MODEL_KINDS}),
            "DEFAULT_MODELS": json.dumps(s.default_models()),
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": s.runtime_url, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "INSPECTION_LOG": "sqlite", "INSPECTION_DB": str(s.store / "inspections" / "inspections.sqlite"),
            "INSPECTION_IMAGE_DIR": str(s.store / "inspections" / "images"), "STORE_ANOMALOUS_IMAGES": "true",
            "KEEP_NORMAL_IMAGES_PERCENT": "100",  # on one's own disk: every verdict can be marked from the history
            "POWERTOOLS_SERVICE_NAME": "ivadas-api", "POWERTOOLS_METRICS_NAMESPACE": "IVADAS",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "ACCESS_CONTROL": "enforce" if s.auth else "open",
            **({"IVADAS_AUTH_FILE": str(s.auth_file), "IVADAS_AUTH_STATE": str(s.store / "auth" / "state.sqlite")} if s.auth else {}),
        }

    def _lifecycle_env(self) -> dict:
        """Datasets, trainings and approvals from the browser: the store the API and the training
        worker share, the registry the endpoints follow, and the secret of the upload forms."""
        s = self.settings
        return {"DATASET_STORE": str(s.store), "MODEL_REGISTRY": f"local:{s.store}", "PIPELINE_NAME": s.pipeline,
                "LOCAL_UPLOAD_SECRET": self._upload_secret}

    def _start_sensor_feed(self) -> None:
        """The scheduled sensor scorer, and for the demo a replay of the pump's later days into it."""
        self.processes["sensor-feed"] = self._spawn("infra.local.serve_feed", self._lambda_env(), self._log("sensor-feed"))
        if self.settings.data is None and self.settings.replay_demo:
            from .sensor_replay import SensorReplay

            demo = DEMOS["sensors"]
            for asset in self._demo_classes("sensors"):
                replay = SensorReplay(self.settings.home / demo.folder, asset, self.settings.store)
                replay.start()
                self._replays.append(replay)

    def _log(self, name: str) -> Path:
        logs = self.settings.store / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs / f"{name}.log"

    def _start_endpoint(self, kind: str, version: ModelVersion) -> None:
        """Stage the version and start its endpoint server on the next free endpoint port."""
        s = self.settings
        port = self.ports.get(kind) or self._next_port()
        link = self.stage(kind, version)
        env = {"IVADAS_MODEL_DIR": str(link), "SAGEMAKER_BIND_HOST": s.host, "SAGEMAKER_BIND_TO_PORT": str(port),
               "SAGEMAKER_MODEL_SERVER_WORKERS": str(s.endpoint_workers)}
        self.processes[kind] = self._spawn("inference.serve", env, self._log(f"endpoint-{kind}"))
        self.ports[kind] = port
        self._write_endpoints()

    def _next_port(self) -> int:
        s = self.settings
        port = s.endpoint_base_port + len(self.ports)
        while port in self.ports.values() or port in (s.port, s.runtime_port):
            port += 1
        _require_free_port(s.host, port)
        return port

    def _write_endpoints(self) -> None:
        s = self.settings
        path = s.endpoints_file
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".endpoints-{os.getpid()}.json")
        partial.write_text(json.dumps({s.endpoint_name(kind): f"{s.host}:{port}" for kind, port in self.ports.items()}))
        partial.replace(path)

    def _spawn(self, module: str, env: dict, log_path: Path) -> subprocess.Popen:
        """`python -m module` as a server of this stack: tied to its lifeline, in a session of its own
        (a Ctrl-C in the terminal reaches only `ivadas up`, which stops the servers in order; and the
        server and its workers form one process group that `stop` can kill as a whole)."""
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(self._lifeline.command(module), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, **self.settings.extra_env, **env, **self._lifeline.env},
                                    pass_fds=self._lifeline.pass_fds, start_new_session=True)

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
        if kind not in self.processes:
            self._start_endpoint(kind, version)
            self.settings.echo(f"{kind} endpoint starting with {version.id}")
            return
        self.stage(kind, version)
        self.processes[kind].send_signal(signal.SIGHUP)  # new workers load it; old ones finish their requests
        self.settings.echo(f"{kind} endpoint switching to {version.id}")

    def stop(self, timeout_s: float = 15) -> None:
        """Stop every server gracefully (requests in flight finish); kill what is still running after
        `timeout_s`, workers included. Returns when every server has exited and freed its port."""
        self._stop.set()
        for replay in self._replays:
            replay.stop()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()  # it may be starting an endpoint: let it finish, so that one is stopped too
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_process_group(process)
        self._lifeline.close()

    def summary(self) -> str:
        lines = [f"IVADAS is running at {self.settings.url}  (UI: {self.settings.url}/, API: POST {self.settings.url}/predict)"]
        for kind in self.serving:
            version = self.registry.get(*_split(self.serving[kind]))
            from pipelines.modalities import of_kind

            metric = of_kind(kind).GATE_METRIC
            value = version.metrics.get("mean", {}).get(metric)
            demo = any(h["reason"] == DEMO_APPROVAL for h in version.history)
            backbone = f"backbone {version.metadata['backbone']}, " if version.metadata.get("backbone") else ""
            lines.append(f"  {kind}: {version.id}{' (DEMO)' if demo else ''}, classes {version.metadata.get('classes')}, "
                         f"{backbone}mean {metric.replace('_', ' ')} " + ("n/a" if value is None else f"{value:.3f}"))
            weights = self._backbone_weights(kind)
            if weights.startswith("random"):
                lines.append(f"  WARNING: the {kind} backbone has RANDOM weights (no ImageNet weights were available): "
                             "fine for the synthetic demo, near chance on real images")
        if "sensor-feed" in self.processes:
            lines.append(f"  sensors page: {self.settings.url}/#sensors  (files dropped in "
                         f"{self.settings.store / 'sensors' / '<asset>' / 'incoming'} are scored every {self.settings.feed_seconds:g} s)")
        lines.append(f"  monitoring: {self.settings.url}/#monitoring  (drift, anomaly rate and reviewed quality every "
                     f"{self.settings.monitor_seconds / 60:g} min into {self.settings.store / 'monitoring' / 'latest'}; "
                     "`ivadas mlflow` shows the trainings' runs)")
        lines.append(self._access_summary())
        lines.append("Ctrl-C (or SIGTERM) stops everything.")
        return "\n".join(lines)

    def _access_summary(self) -> str:
        if not self.settings.auth:
            return f"  open: no sign-in (anyone who reaches {self.settings.host}:{self.settings.port} may use it; `--auth` requires it)"
        from .auth import AuthStore

        store = AuthStore(self.settings.auth_file)
        users, keys = store.users(), store.keys()
        line = (f"  sign-in required: {len(users)} user(s) and {len(keys)} station key(s) in {self.settings.auth_file}")
        if not users:
            line += "\n  no user yet: `ivadas users add NAME --group admin` (the running stack sees it at once)"
        return line

    def _backbone_weights(self, kind: str) -> str:
        manifest = json.loads((self.settings.store / "serving" / kind / "current" / "manifest.json").read_text())
        return manifest.get("backbone", {}).get("weights", "")


def _print_now(line: str) -> None:
    print(line, flush=True)


def _kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL a server started in its own session, and every worker it forked."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


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


class StopRequested(Exception):
    """A signal asked `ivadas up` to stop."""


#: Ctrl-C; what `docker stop`, systemd and `timeout` send; what a closed terminal sends.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _request_stop(signum, frame):
    raise StopRequested(signal.Signals(signum).name)


def run_until_interrupted(settings: StackSettings) -> int:
    """Train if needed, serve until a stop signal or a server's death, then stop every server.
    Must run in the main thread (it handles the stop signals)."""
    previous = {signum: signal.signal(signum, _request_stop) for signum in STOP_SIGNALS}
    stack = LocalStack(settings)
    try:
        stack.start()
        settings.echo(stack.summary())
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(1)
        settings.echo("a server stopped unexpectedly; see the logs in " + str(settings.store / "logs"))
        return 1
    except StopRequested as request:
        settings.echo(f"stopping ({request}) ...")
        return 0
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not cut the stop short and leave servers behind
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
