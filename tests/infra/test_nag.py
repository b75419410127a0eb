"""cdk-nag acknowledgments are written by hand: a wildcard nobody acknowledged stops synth, and so
does a new action slipped onto a pattern that was acknowledged for other actions."""

import pytest
from aws_cdk import App, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.aws import nag

CONTEXT = {"ivadas:account": "123456789012", "ivadas:alarmEmail": "qa@example.com"}


def unchecked_app(tmp_path):
    app = build_app(App(context=CONTEXT, outdir=str(tmp_path)), nag=False)
    edge, main = (next(s for s in app.node.children if s.node.id == name) for name in ("ivadas-dev-edge", "ivadas-dev"))
    return app, edge, main


def checked(app, edge, main):
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    nag.acknowledge_findings(edge, main)


def test_a_new_unacknowledged_wildcard_fails_synth(tmp_path):
    app, edge, main = unchecked_app(tmp_path)
    main.sensor_feed.function.add_to_role_policy(iam.PolicyStatement(
        actions=["s3:GetObject"], resources=[main.storage.data.arn_for_objects("exports/*")]))
    checked(app, edge, main)
    with pytest.raises(Exception) as failed:
        app.synth()
    assert "ValidationFailed" in str(failed.value)
    report = (tmp_path / "validation-report.json").read_text()
    assert "/exports/*" in report and "AwsSolutions-IAM5" in report


def test_a_new_action_on_an_acknowledged_pattern_or_on_star_stops_synth(tmp_path):
    app, edge, main = unchecked_app(tmp_path)
    main.api.function.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"],
                                                             resources=[main.storage.artifacts.arn_for_objects("inspections/*")]))
    with pytest.raises(nag.UnacknowledgedWildcard, match="s3:DeleteObject on Resource::.*inspections/\\*"):
        checked(app, edge, main)
    app, edge, main = unchecked_app(tmp_path / "again")
    main.api.function.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:Scan"], resources=["*"]))
    with pytest.raises(nag.UnacknowledgedWildcard, match="dynamodb:Scan on Resource::\\*"):
        checked(app, edge, main)


def test_an_acknowledgment_whose_wildcard_is_gone_stops_synth(tmp_path):
    app, edge, main = unchecked_app(tmp_path)
    wildcards = nag.predict_wildcards(main) + [nag.Wildcard("Resource::arn:aws:s3:::nowhere/*", "no longer true")]
    with pytest.raises(nag.UnacknowledgedWildcard, match="no longer has Resource::arn:aws:s3:::nowhere"):
        nag.acknowledge_wildcards(main.api.function.role, wildcards)
