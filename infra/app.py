"""The CDK app: `npx cdk synth` / `npx cdk deploy --all` (settings in cdk.json, validated by infra.aws.config)."""

from __future__ import annotations

import os

from aws_cdk import App, Environment, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.aws.config import IvadasConfig
from infra.aws.nag import acknowledge_findings
from infra.aws.stacks.edge import EdgeStack
from infra.aws.stacks.main import IvadasStack


STRONG_REFERENCES = "@aws-cdk/core:defaultCrossStackReferences"


def build_app(app: App | None = None, nag: bool = True) -> App:
    app = app or App()
    if app.node.try_get_context(STRONG_REFERENCES) is None:
        app.node.set_context(STRONG_REFERENCES, "strong")  # explicit: producers stay protected while consumers use them
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
