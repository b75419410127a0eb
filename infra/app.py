"""The CDK app: `npx cdk synth` / `npx cdk deploy --all` (settings in cdk.json, validated by infra.aws.config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.aws.config import IvadasConfig
from infra.aws.nag import acknowledge_findings
from infra.aws.stacks.edge import EdgeStack
from infra.aws.stacks.main import IvadasStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
#: Feature flags set on purpose to something else than aws-cdk-lib's recommended value, and why.
#: Every other recommended flag is set as recommended in cdk.json (a test holds the two together).
FEATURE_FLAG_CHOICES = {
    "@aws-cdk/core:defaultCrossStackReferences": (
        "strong", "the main stack reads the edge stack's WAF ACL across regions; strong references keep the producer "
                  "from being deleted while a consumer still uses it"),
    "@aws-cdk/core:target-partitions": (
        ["aws"], "IVADAS deploys to the commercial partition; listing others only adds unused partition mappings"),
}


def feature_flags() -> dict:
    """The feature flags of cdk.json (the CLI passes them to the app; tests and scripts get them here)."""
    context = json.loads(CDK_JSON.read_text())["context"]
    return {key: value for key, value in context.items() if key.startswith("@aws-cdk")}


def build_app(app: App | None = None, nag: bool = True) -> App:
    app = app or App()
    for flag, value in feature_flags().items():
        if app.node.try_get_context(flag) is None:  # context given on the command line wins
            app.node.set_context(flag, value)
    config = IvadasConfig.from_context(app.node)
    account = config.account or os.environ.get("CDK_DEFAULT_ACCOUNT")
    edge = EdgeStack(app, f"{config.prefix}-edge", config=config, env=Environment(account=account, region="us-east-1"),
                     cross_region_references=True, description="IVADAS WAF for CloudFront (us-east-1)")
    main = IvadasStack(app, config.prefix, config=config, web_acl_arn=edge.web_acl.acl.attr_arn,
                       env=Environment(account=account, region=config.region), cross_region_references=True,
                       description="IVADAS: visual anomaly detection as a service")
    for stack in (edge, main):
        Tags.of(stack).add("project", "ivadas")
        Tags.of(stack).add("environment", config.environment)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        acknowledge_findings(edge, main)
    return app


if __name__ == "__main__":
    build_app().synth()
