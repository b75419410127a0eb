"""One synthesized app for all template tests (synth is slow; assertions are cheap)."""

import pytest


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    from aws_cdk import App

    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(App(context={"ivadas:account": "123456789012", "ivadas:alarmEmail": "qa@example.com"}, outdir=str(outdir)))
    assembly = app.synth()
    stacks = {stack.stack_name: stack for stack in assembly.stacks}
    return app, assembly, stacks, outdir


@pytest.fixture(scope="session")
def main_template(synthesized):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized[2]["ivadas-dev"].template)


@pytest.fixture(scope="session")
def edge_template(synthesized):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized[2]["ivadas-dev-edge"].template)


@pytest.fixture(scope="session")
def main_template_json(synthesized) -> dict:
    return synthesized[2]["ivadas-dev"].template
