"""The container images' install steps, run exactly as their Dockerfiles run them, in clean virtualenvs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.image, pytest.mark.slow]


def fresh_venv(path: Path) -> dict:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    env = {**os.environ, "PATH": f"{path / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(path)}
    env.pop("PYTHONPATH", None)
    env["TORCH_INDEX_URL"] = ""  # the Dockerfile points at the CPU index; here pip's own configuration serves it
    return env


def run(command, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1500)


def test_dockerfile_uses_the_shared_install_script():
    dockerfile = (ROOT / "pipelines/Dockerfile").read_text()
    assert "sh pipelines/docker/install.sh training" in dockerfile
    assert "install -m 0755 pipelines/docker/train /usr/local/bin/train" in dockerfile


def test_training_image_installs_and_runs_its_steps(tmp_path):
    env = fresh_venv(tmp_path / "venv")
    install = run(["sh", str(ROOT / "pipelines/docker/install.sh"), "training"], env, tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    for step in ("preprocess", "train", "evaluate"):
        if step == "train":
            check = run(["python", "-c", "import pipelines.steps.train, torch; print(torch.__version__)"], env, tmp_path)
            assert check.returncode == 0 and check.stdout.startswith("2.13.0"), check.stderr
        else:
            check = run(["python", "-m", f"pipelines.steps.{step}", "--help"], env, tmp_path)
            assert check.returncode == 0 and "usage" in check.stdout, check.stderr
    # a step on bad input fails with one line, as SageMaker will show it
    failing = run(["python", "-m", "pipelines.steps.preprocess", "--input", str(tmp_path / "none"),
                   "--output", str(tmp_path / "out"), "--classes", "tiles"], {**env, "SM_OUTPUT_DIR": str(tmp_path / "sm")}, tmp_path)
    assert failing.returncode == 1 and "does not exist" in failing.stderr
    assert "does not exist" in (tmp_path / "sm" / "failure").read_text()


def test_endpoint_image_installs_without_torch_and_serves(tmp_path, patchcore_bundle):
    dockerfile = (ROOT / "inference/Dockerfile").read_text()
    assert "sh pipelines/docker/install.sh endpoint" in dockerfile and 'CMD ["serve"]' in dockerfile
    env = fresh_venv(tmp_path / "venv")
    install = run(["sh", str(ROOT / "pipelines/docker/install.sh"), "endpoint"], env, tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert run(["python", "-c", "import torch"], env, tmp_path).returncode != 0  # slim: no torch
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server_env = {**env, "IVADAS_MODEL_DIR": str(patchcore_bundle[0]), "SAGEMAKER_BIND_TO_PORT": str(port),
                  "SAGEMAKER_BIND_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    server = subprocess.Popen(["sh", str(ROOT / "pipelines/docker/serve")], env=server_env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=60)
