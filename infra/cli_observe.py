"""`ivadas mlflow` (the tracking UI over the embedded store) and `ivadas monitor` (drift and quality report).

Kept apart from `infra.cli` because they form their own command group; `infra.cli` only registers them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXIT_USER_ERROR = 2


def _store(args) -> Path:
    from infra.cli import store_dir

    return Path(args.store) if args.store else store_dir()


def cmd_mlflow(args) -> int:
    """Serve MLflow's UI over the local tracking store (blocks until interrupted)."""
    from pipelines import tracking

    uri = tracking.local_tracking_uri(_store(args))
    command = mlflow_command(uri, args.host, args.port)
    if command is None:
        print("error: the MLflow UI needs the full mlflow package (the training extra has only mlflow-skinny): "
              "pip install 'mlflow>=3.0'", file=sys.stderr)
        return EXIT_USER_ERROR
    busy = _port_in_use(args.host, args.port)
    if busy:  # the server would log it among its start-up lines and end with status 0
        print(f"error: port {args.port} on {args.host} is in use ({busy}); choose another with --port", file=sys.stderr)
        return EXIT_USER_ERROR
    if not Path(uri[len("sqlite:///"):]).is_file():
        print(f"no runs yet: {uri} is created by the first training (`ivadas pipeline run --local`)", file=sys.stderr)
    print(f"MLflow UI on http://{args.host}:{args.port} over {uri} (Ctrl+C stops it)", flush=True)
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return 130


def _port_in_use(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None when it can."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a listener refuses, TIME_WAIT does not
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def mlflow_command(uri: str, host: str, port: int) -> list[str] | None:
    """`mlflow server` over the embedded store; its artifact root is where the pipeline puts artifacts."""
    try:
        import mlflow.server  # noqa: F401  (only the full package has the UI)
    except ImportError:
        return None
    from pipelines.tracking import local_artifact_root

    Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
            "--default-artifact-root", local_artifact_root(uri), "--no-serve-artifacts", "--host", host, "--port", str(port), "--workers", "1"]


def cmd_monitor(args) -> int:
    """One monitoring pass over the local stack's inspection log and data capture (either may be absent,
    not both): summary.json and report.html."""
    from datetime import datetime, timezone

    from pipelines.monitoring.job import run_local
    from pipelines.monitoring.records import parse_time

    store = _store(args)
    until = parse_time(args.until) if args.until else datetime.now(timezone.utc)
    since = parse_time(args.since)
    if since >= until:
        print(f"error: --since {args.since} is not before --until {args.until or 'now'}", file=sys.stderr)
        return EXIT_USER_ERROR
    output = Path(args.output) if args.output else store / "monitoring" / "latest"
    result = run_local(store, output, since, until, args.thresholds, Path(args.inspections) if args.inspections else None)
    summary = result.summary
    captured = summary["sources"].get("data_capture", 0)
    print(f"{summary['verdicts']} verdicts{f' ({captured} from data capture)' if captured else ''} in "
          f"{len(summary['groups'])} class/model group(s), {len(summary['alarms'])} alarm(s); report: {result.report}")
    for alarm in summary["alarms"]:
        print(f"alarm: {alarm['message']}")
    return 0


def add_commands(sub) -> None:
    monitor = sub.add_parser("monitor", help="drift, anomaly rate and confirmed quality over the inspection log and data capture")
    monitor.add_argument("--since", default="24h", help="start: ISO-8601 time or a span back from now (24h, 7d; default 24h)")
    monitor.add_argument("--until", help="end (default: now)")
    monitor.add_argument("--output", help="report folder (default: $IVADAS_HOME/store/monitoring/latest)")
    monitor.add_argument("--store", help="local artifact store (default: $IVADAS_HOME/store)")
    monitor.add_argument("--inspections", help="inspection log (default: <store>/inspections/inspections.sqlite)")
    monitor.add_argument("--thresholds", help="alarm thresholds JSON (default: <store>/monitoring.json if present)")
    monitor.set_defaults(func=cmd_monitor)

    mlflow = sub.add_parser("mlflow", help="open the MLflow UI over the local experiment-tracking store")
    mlflow.add_argument("--store", help="local artifact store (default: $IVADAS_HOME/store)")
    mlflow.add_argument("--host", default="127.0.0.1")
    mlflow.add_argument("--port", type=int, default=5000)
    mlflow.set_defaults(func=cmd_mlflow)


__all__ = ["add_commands", "mlflow_command"]
