"""The two container images, built from this repository's Dockerfiles at deploy time (synth needs no Docker).

Each image's build context is exactly what its Dockerfile copies, so its asset hash (and with it a
rebuild and a new pipeline definition) changes with those files only, not with test caches,
build folders or documentation elsewhere in the repository.
"""

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

ROOT = Path(__file__).resolve().parents[3]
NEVER = ["**/__pycache__", "**/*.pyc"]
TRAINING_CONTEXT = ["pyproject.toml", "README.md", "inference", "pipelines", "infra/__init__.py", "infra/cli.py"]
ENDPOINT_CONTEXT = ["pyproject.toml", "README.md", "inference", "pipelines/docker"]


def only(paths: list[str]) -> list[str]:
    """Docker-ignore patterns that keep `paths` and nothing else."""
    return ["*", *(f"!{path}" for path in paths), *NEVER]


class Images(Construct):
    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.training = ecr_assets.DockerImageAsset(
            self, "Training", directory=str(ROOT), file="pipelines/Dockerfile", ignore_mode=IgnoreMode.DOCKER,
            exclude=only(TRAINING_CONTEXT + ["pipelines/Dockerfile"]), platform=ecr_assets.Platform.LINUX_AMD64)
        self.endpoint = ecr_assets.DockerImageAsset(
            self, "Endpoint", directory=str(ROOT), file="inference/Dockerfile", ignore_mode=IgnoreMode.DOCKER,
            exclude=only(ENDPOINT_CONTEXT + ["inference/Dockerfile"]), platform=ecr_assets.Platform.LINUX_AMD64)
