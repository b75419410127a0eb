"""`ivadas bench --suite load`: the local stack under load, on loopback only, bounded in count and time.

For each backbone: train one synthetic class through the local pipeline, start the stack, then send
`POST /predict` (heatmap and regions included) at 1, 4 and 16 concurrent clients, and the same
body straight to the endpoint at 1 client, to measure what the Lambda + API layer adds.
"""

from __future__ import annotations

import base64
import json
import platform
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

CONCURRENCY = (1, 4, 16)
MAX_SECONDS_PER_LEVEL = 60


def _post(url: str, body: bytes) -> tuple[int, float]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def load(url: str, bodies: list[bytes], clients: int, requests_per_client: int) -> dict:
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + MAX_SECONDS_PER_LEVEL

    def client(index: int):
        for i in range(requests_per_client):
            if time.monotonic() > deadline:
                return
            status, ms = _post(url, bodies[(index + i) % len(bodies)])
            with lock:
                latencies.append(ms)
                errors[0] += status != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q):
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    return {"clients": clients, "requests": len(ordered), "errors": errors[0], "rps": len(ordered) / elapsed,
            "p50": statistics.median(ordered), "p95": pct(95), "p99": pct(99)}


def _stack_for(backbone: str, weights: str, workdir: Path, base_port: int):
    from infra.local.stack import LocalStack, StackSettings
    from pipelines.local_runner import LocalPipeline, RunParameters
    from pipelines.registry import APPROVED
    from pipelines.vision.synthetic import generate

    data = generate(workdir / "data", ["tiles"], 256, train_count=60, test_good_count=10, test_defect_count=3)
    home = workdir / f"home-{backbone}"
    settings = StackSettings(home=home, port=base_port, runtime_port=base_port + 1, endpoint_base_port=base_port + 2, data=data,
                             classes=("tiles",), backbone=backbone, weights=weights, endpoint_workers=2, echo=lambda *a: None)
    pipeline = LocalPipeline(settings.store, echo=lambda *a: None)
    for kind in ("patchcore", "softpatch"):
        record = pipeline.run(RunParameters(str(data), ("tiles",), kind, {"backbone": backbone, "weights": weights}))
        group, number = record["registered_version"].rsplit("/", 1)
        pipeline.registry.set_status(group, int(number), APPROVED, "load test")
    stack = LocalStack(settings)
    stack.start()
    return stack, data


def run_load_bench(args) -> str:
    rows, overheads = [], {}
    with tempfile.TemporaryDirectory(prefix="ivadas-load-") as tmp:
        for index, backbone in enumerate(("resnet18", "wide_resnet50_2")):
            print(f"load: {backbone} ...", flush=True)
            weights = args.weights if args.weights != "auto" else "auto-or-random"
            stack, data = _stack_for(backbone, weights, Path(tmp), 18400 + 10 * index)
            try:
                images = sorted((data / "tiles" / "test").rglob("*.png"))[:12]
                bodies = [json.dumps({"class_name": "tiles", "image_base64": base64.b64encode(p.read_bytes()).decode()}).encode()
                          for p in images]
                api, endpoint = stack.settings.url + "/predict", f"http://127.0.0.1:{stack.settings.endpoint_base_port}/invocations"
                for body in bodies[:3]:
                    _post(api, body)  # warm-up
                direct = load(endpoint, bodies, 1, 40)
                rows.append((backbone, "endpoint directly", direct))
                for clients in CONCURRENCY:
                    rows.append((backbone, "API (/predict)", load(api, bodies, clients, max(40 // clients, 10))))
                overheads[backbone] = rows[-len(CONCURRENCY)][2]["p50"] - direct["p50"]
            finally:
                stack.stop()
    lines = [
        "## Local stack under load",
        "",
        f"Command: `ivadas bench --suite load`. Machine: {platform.machine()}, loopback only. One class, PatchCore, 256 px, "
        "both endpoints with 2 workers; requests carry a 256 px PNG and ask for heatmap and regions.",
        "",
        "| backbone | target | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backbone, target, r in rows:
        lines.append(f"| {backbone} | {target} | {r['clients']} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | "
                     f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |")
    lines.append("")
    lines.append("Overhead of the Lambda + API layer over the endpoint (p50, 1 client): "
                 + ", ".join(f"{b} {o:.1f} ms" for b, o in overheads.items()) + " (budget ≤ 20 ms).")
    return "\n".join(lines)
