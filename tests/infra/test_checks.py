"""cdk-nag, cfn-lint, determinism, and the CDK CLI itself (no credentials, no Docker, no network)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def acknowledgments(app) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every acknowledgment recorded in construct metadata."""
    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                found += [(construct.node.path, rule, reason) for rule, reason in entry.data.items()]
    return found


def test_cdk_nag_has_no_unacknowledged_finding_and_every_acknowledgment_has_a_reason(synthesized):
    app, assembly, stacks, outdir = synthesized  # synth raises on any unacknowledged AwsSolutions finding
    report = json.loads((outdir / "validation-report.json").read_text()) if (outdir / "validation-report.json").exists() else None
    if report:
        assert all(p["conclusion"] == "success" for p in report["pluginReports"])
    acks = [a for a in acknowledgments(app) if a[1].startswith("AwsSolutions::")]
    assert len(acks) >= 20, "the acknowledgments must be recorded on the constructs"
    for path, rule, reason in acks:
        assert len(reason) >= 40, (path, rule, reason)


def test_cfn_lint_reports_no_error(synthesized):
    outdir = synthesized[3]
    templates = sorted(str(p) for p in outdir.glob("*.template.json"))
    assert len(templates) == 2
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    result = subprocess.run([cfn_lint, "--non-zero-exit-code", "error", *templates],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_synth_is_deterministic(synthesized, tmp_path):
    from aws_cdk import App

    from infra.app import build_app

    again = build_app(App(context={"ivadas:account": "123456789012", "ivadas:alarmEmail": "qa@example.com"}, outdir=str(tmp_path))).synth()
    for stack in again.stacks:
        assert json.dumps(stack.template, sort_keys=True) == json.dumps(synthesized[2][stack.stack_name].template, sort_keys=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npx") is None or not (ROOT / "node_modules" / ".bin" / "cdk").exists(),
                    reason="the pinned CDK CLI is not installed (npm ci)")
def test_cdk_synth_from_the_cli_without_credentials_docker_network_or_deprecated_apis(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # JSII_DEPRECATED=fail: any use of an API aws-cdk-lib marks deprecated fails the synth
    env.update(HOME=str(tmp_path), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CDK_DISABLE_VERSION_CHECK="1",
               JSII_DEPRECATED="fail", PATH=f"{tmp_path / 'nodocker'}:{env['PATH']}")
    (tmp_path / "nodocker").mkdir()
    docker = tmp_path / "nodocker" / "docker"
    docker.write_text("#!/bin/sh\necho 'docker must not be called by synth' >&2\nexit 1\n")
    docker.chmod(0o755)
    result = subprocess.run([str(ROOT / "node_modules/.bin/cdk"), "synth", "--quiet", "--no-notices", "--output", str(tmp_path / "out")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.template.json")) == ["ivadas-dev-edge.template.json", "ivadas-dev.template.json"]
