"""The two container images, built from this repository's Dockerfiles at deploy time (synth needs no Docker)."""

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

ROOT = Path(__file__).resolve().parents[3]
EXCLUDE = [".git", ".venv", ".ivadas", "node_modules", "cdk.out", "tests", "test-output", "**/__pycache__"]


class Images(Construct):
    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.training = ecr_assets.DockerImageAsset(self, "Training", directory=str(ROOT), file="pipelines/Dockerfile",
                                                    exclude=EXCLUDE + ["ui", "lambda"], platform=ecr_assets.Platform.LINUX_AMD64)
        self.endpoint = ecr_assets.DockerImageAsset(self, "Endpoint", directory=str(ROOT), file="inference/Dockerfile",
                                                    exclude=EXCLUDE + ["ui", "lambda", "infra"], platform=ecr_assets.Platform.LINUX_AMD64)
