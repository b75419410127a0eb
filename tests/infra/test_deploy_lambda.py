"""The deploy Lambda behind its deployment queue, against the strict fake of SageMaker (`strict_aws`).

Every scenario runs the path the CDK app deploys (`deployment_harness.World`: the template's rules,
queue settings and Lambda environment) and ends by checking that the registry's served version and
the endpoint's version agree.
"""

import json

import pytest

import pipelines.registry as registry_module
from pipelines.registry import APPROVED, REJECTED, SageMakerRegistry
from tests.infra.deployment_harness import World, allowed, hosted_on, role_statements, targets_with

import approvals  # noqa: E402  (lambda/deploy, put on sys.path by the harness)

GROUP, ENDPOINT = "ivadas-dev-training-patchcore", "ivadas-dev-patchcore"
ALARM = "ivadas-dev-patchcore-5xx"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ivadas-endpoint:1"


class Interrupted(Exception):
    """The Lambda cut off between two calls (timeout, throttling of the function itself)."""


@pytest.fixture
def world(main_template_json, monkeypatch):
    world = World(main_template_json, monkeypatch)
    # the registry's and the Lambda's approval records follow the fake's clock, as they follow AWS's on AWS
    clock = lambda: world.fake.now().isoformat(timespec="milliseconds")  # noqa: E731
    monkeypatch.setattr(registry_module, "now", clock)
    monkeypatch.setattr(approvals, "now", clock)
    return world


def registry(world) -> SageMakerRegistry:
    return SageMakerRegistry(client=world.console)


def register(world, count: int, group: str = GROUP) -> list:
    return [registry(world).register(group, f"s3://artifacts/model-{n}.tar.gz", {}, {"classes": "tiles"}, image_uri=IMAGE)
            for n in range(1, count + 1)]


def approve_in_console(world, version) -> None:
    world.console.update_model_package(ModelPackageArn=version.arn, ModelApprovalStatus=APPROVED)


def assert_agree(world, group: str = GROUP, endpoint: str = ENDPOINT) -> str | None:
    """The registry's served version (as the CLI computes it) is what the endpoint serves."""
    served = registry(world).served(group)
    serving = world.endpoint_serves(endpoint)
    assert (served.arn if served else None) == serving, (served and served.id, serving)
    return serving


def emitted(capsys, metric: str) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    return [line for line in lines if metric in line]


def test_first_approval_creates_the_endpoint_then_registers_autoscaling(world):
    first, = register(world, 1)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    assert assert_agree(world) == first.arn
    endpoint = world.fake.endpoints[ENDPOINT]
    config = world.fake.configs[endpoint["EndpointConfigName"]]
    assert config["DataCaptureConfig"]["DestinationS3Uri"].endswith("/data-capture/patchcore")
    # JSON requests and CSV sensor windows are captured as text (any other type would be base64)
    assert config["DataCaptureConfig"]["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json"],
                                                                        "CsvContentTypes": ["text/csv"]}
    assert config["KmsKeyId"]  # ml.c6i has no local storage: the volume is encrypted with the project key
    model = world.fake.models[config["ProductionVariants"][0]["ModelName"]]
    assert model["PrimaryContainer"]["Environment"]["IVADAS_MODEL_VERSION"] == f"{GROUP}/1"
    target = world.fake.targets[f"endpoint/{ENDPOINT}/variant/AllTraffic"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert world.fake.policies[f"endpoint/{ENDPOINT}/variant/AllTraffic"] == [f"{ENDPOINT}-invocations"]


def test_rollback_and_reapproval_reuse_the_models_and_configs_that_exist(world, capsys):
    first, second = register(world, 2)
    for version, status in ((1, APPROVED), (2, APPROVED), (2, REJECTED)):
        registry(world).set_status(GROUP, version, status, "review", by="qa")
        world.settle()
    assert assert_agree(world) == first.arn  # rolled back onto v1's model and config
    approve_in_console(world, second)  # SageMaker allows approving a rejected version again
    world.settle()
    assert assert_agree(world) == second.arn
    # one model and one config per version, whatever the number of deployments of each
    assert world.fake.calls.count("CreateModel") == 2 and world.fake.calls.count("CreateEndpointConfig") == 2
    assert len(world.fake.updates) == 3 and world.queue.dead_letters == []
    assert emitted(capsys, "DeploymentErrors") == []


def test_a_retry_after_a_partial_failure_completes_the_deployment(world):
    first, = register(world, 1)
    world.fake.interrupt["CreateEndpointConfig"] = Interrupted("cut off after CreateModel")
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    assert assert_agree(world) == first.arn
    assert world.fake.calls.count("CreateModel") == 1  # the retry found the model and went on


def test_an_approval_during_a_deployment_waits_in_the_queue_for_the_endpoint(world):
    first, second = register(world, 2)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.run(60)
    assert world.fake.endpoints[ENDPOINT]["EndpointStatus"] == "Creating"
    registry(world).set_status(GROUP, 2, APPROVED, "better", by="qa")
    world.run(60)
    waiting = [m for m in world.queue.messages if m.receives >= 1]
    assert waiting, "the approval of v2 is retried from the queue while the endpoint is created"
    world.settle()
    assert assert_agree(world) == second.arn
    assert len(world.fake.updates) == 1 and world.queue.dead_letters == []


def test_a_deployment_that_cannot_proceed_ends_in_the_dead_letter_queue(world):
    register(world, 2)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    world.fake.endpoints[ENDPOINT]["EndpointStatus"] = "SystemUpdating"  # maintenance that never ends
    registry(world).set_status(GROUP, 2, APPROVED, "better", by="qa")
    world.run(world.queue.visibility * (world.queue.max_receives + 1))
    assert [json.loads(m.body)["detail-type"] for m in world.queue.dead_letters][:1] == ["SageMaker Model Package State Change"]


def test_an_alarm_during_the_bake_rolls_back_and_the_registry_follows(world, capsys):
    first, second = register(world, 2)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    registry(world).set_status(GROUP, 2, APPROVED, "better", by="qa")
    world.run(120)
    assert world.fake.endpoints[ENDPOINT]["EndpointStatus"] == "Updating"
    world.fake.set_alarm(ALARM, "ALARM")
    world.settle()
    assert assert_agree(world) == first.arn
    rejected = registry(world).get(GROUP, 2)
    assert rejected.status == REJECTED and rejected.history[-1]["by"] == "ivadas-deploy"
    assert ALARM in rejected.history[-1]["reason"]
    assert ALARM in world.console.describe_model_package(ModelPackageName=second.arn)["ApprovalDescription"]
    [rolled_back] = emitted(capsys, "DeploymentRolledBack")
    assert rolled_back["kind"] == "patchcore" and rolled_back["package"] == second.arn


def test_a_canary_needs_two_instances_one_instance_shifts_all_at_once_and_bakes(world):
    register(world, 3)
    for version in (1, 2):
        registry(world).set_status(GROUP, version, APPROVED, "reviewed", by="qa")
        world.settle()
    single = world.fake.updates[-1]
    policy = single["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert single["fleet"] == 1 and policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    env = world.env
    assert policy["TerminationWaitInSeconds"] == int(env["CANARY_WAIT_SECONDS"]) + int(env["BAKE_SECONDS"])
    # auto-scaling grew the fleet to three: the next deployment keeps three and canaries on one
    world.fake.endpoints[ENDPOINT]["ProductionVariants"][0].update(DesiredInstanceCount=3, CurrentInstanceCount=3)
    registry(world).set_status(GROUP, 3, APPROVED, "reviewed", by="qa")
    world.settle()
    fleet = world.fake.updates[-1]
    routing = fleet["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert fleet["fleet"] == 3 and routing["Type"] == "CANARY"
    assert routing["CanarySize"] == {"Type": "INSTANCE_COUNT", "Value": 1}
    assert assert_agree(world).endswith("/3")


def test_an_instance_type_change_deregisters_autoscaling_and_registers_it_again(main_template_json, monkeypatch):
    first = World(main_template_json, monkeypatch)
    monkeypatch.setattr(registry_module, "now", lambda: first.fake.now().isoformat(timespec="milliseconds"))
    register(first, 2)
    registry(first).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    first.settle()
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" in first.fake.targets
    larger = first.redeployed(monkeypatch, hosted_on(main_template_json, "ml.c6i.2xlarge"))
    registry(larger).set_status(GROUP, 2, APPROVED, "reviewed", by="qa")
    larger.settle()
    config = larger.fake.configs[larger.fake.endpoints[ENDPOINT]["EndpointConfigName"]]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c6i.2xlarge"
    assert assert_agree(larger).endswith("/2")
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" in larger.fake.targets  # back once in service


def moved_to(first: World, main_template_json, monkeypatch, instance_type: str) -> World:
    """The same registry and endpoint after the stack was deployed again with the kind on `instance_type`."""
    return first.redeployed(monkeypatch, hosted_on(main_template_json, instance_type, kinds=("patchcore",)))


def test_a_kind_moved_to_another_instance_type_is_redeployed_without_a_new_approval(main_template_json, monkeypatch):
    """endpointInstanceTypes changed and the stack deployed again: the endpoint's next pass puts the same
    version on the new type (blue/green), auto-scaling registered again once it is in service."""
    first = World(main_template_json, monkeypatch)
    monkeypatch.setattr(registry_module, "now", lambda: first.fake.now().isoformat(timespec="milliseconds"))
    register(first, 1)
    registry(first).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    first.settle()
    served = assert_agree(first)
    moved = moved_to(first, main_template_json, monkeypatch, "ml.c6i.2xlarge")
    moved.run(16 * 60)  # the next scheduled pass (every 15 minutes)
    moved.settle()
    config = moved.fake.configs[moved.fake.endpoints[ENDPOINT]["EndpointConfigName"]]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c6i.2xlarge"
    assert assert_agree(moved) == served and len(moved.fake.updates) == 1
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" in moved.fake.targets
    moved.run(3600)  # four more scheduled passes
    assert len(moved.fake.updates) == 1  # in place: nothing more to do


def test_a_move_of_the_served_version_that_rolls_back_is_not_tried_again(main_template_json, monkeypatch, capsys):
    """The move to the new type trips the endpoint's alarm and SageMaker rolls it back onto the former
    config of the same version: the version keeps serving and stays approved, the rollback is counted
    once, auto-scaling comes back, and later passes do not move again; a new approval deploys as usual."""
    first = World(main_template_json, monkeypatch)
    monkeypatch.setattr(registry_module, "now", lambda: first.fake.now().isoformat(timespec="milliseconds"))
    register(first, 2)
    registry(first).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    first.settle()
    before = first.fake.endpoints[ENDPOINT]["EndpointConfigName"]
    moved = moved_to(first, main_template_json, monkeypatch, "ml.c6i.2xlarge")
    moved.run(16 * 60)
    assert moved.fake.endpoints[ENDPOINT]["EndpointStatus"] == "Updating"
    moved.fake.set_alarm(ALARM, "ALARM")
    moved.settle()
    moved.fake.set_alarm(ALARM, "OK")
    assert moved.fake.endpoints[ENDPOINT]["EndpointConfigName"] == before
    assert registry(moved).get(GROUP, 1).status == APPROVED and assert_agree(moved).endswith("/1")
    [rolled_back] = emitted(capsys, "DeploymentRolledBack")
    assert rolled_back["config"] == moved.fake.updates[0]["EndpointConfigName"] and ALARM in rolled_back["reason"]
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" in moved.fake.targets  # registered again on the former type
    # auto-scaling grows the fleet: the move would make another config, but not another move
    moved.fake.endpoints[ENDPOINT]["ProductionVariants"][0].update(DesiredInstanceCount=2, CurrentInstanceCount=2)
    moved.run(3600)  # four more scheduled passes: no second attempt
    moved.settle()
    assert len(moved.fake.updates) == 1 and moved.queue.dead_letters == []
    registry(moved).set_status(GROUP, 2, APPROVED, "better", by="qa")  # a new version goes to the new type
    moved.settle()
    config = moved.fake.configs[moved.fake.endpoints[ENDPOINT]["EndpointConfigName"]]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c6i.2xlarge" and assert_agree(moved).endswith("/2")


def test_a_move_refused_for_the_new_types_quota_keeps_the_old_fleet_scaling(main_template_json, monkeypatch, capsys):
    """The account has no endpoint quota for the new type: UpdateEndpoint is refused after auto-scaling
    was deregistered for the type change. The old fleet serves on with auto-scaling registered again,
    and the refusal is counted with AWS's reason (an alarm); the move is tried at every pass, so it
    happens once the quota is raised."""
    first = World(main_template_json, monkeypatch)
    monkeypatch.setattr(registry_module, "now", lambda: first.fake.now().isoformat(timespec="milliseconds"))
    register(first, 1)
    registry(first).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    first.settle()
    first.fake.quotas["ml.c6i.2xlarge"] = 0
    moved = moved_to(first, main_template_json, monkeypatch, "ml.c6i.2xlarge")
    moved.run(16 * 60)  # the next scheduled pass, retried from the queue
    assert moved.fake.updates == [] and moved.fake.endpoints[ENDPOINT]["EndpointStatus"] == "InService"
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" in moved.fake.targets
    assert assert_agree(moved).endswith("/1")
    assert any("ResourceLimitExceeded" in e["error"] for e in emitted(capsys, "DeploymentErrors"))
    del moved.fake.quotas["ml.c6i.2xlarge"]  # raised through Service Quotas
    moved.run(15 * 60)
    moved.settle()
    config = moved.fake.configs[moved.fake.endpoints[ENDPOINT]["EndpointConfigName"]]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c6i.2xlarge" and assert_agree(moved).endswith("/1")


def test_a_kinds_scaling_target_is_applied_and_a_changed_one_at_the_next_pass(main_template_json, monkeypatch):
    first = World(main_template_json, monkeypatch, env=targets_with(main_template_json, ("patchcore",), invocations_per_instance=2000))
    monkeypatch.setattr(registry_module, "now", lambda: first.fake.now().isoformat(timespec="milliseconds"))
    register(first, 1)
    registry(first).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    first.settle()
    resource = f"endpoint/{ENDPOINT}/variant/AllTraffic"

    def target_value(world) -> float:
        return world.fake.policy_details[(resource, f"{ENDPOINT}-invocations")]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]

    assert target_value(first) == 2000
    lower = first.redeployed(monkeypatch, targets_with(main_template_json, ("patchcore",), invocations_per_instance=500))
    lower.run(16 * 60)  # the next scheduled pass
    lower.settle()
    assert target_value(lower) == 500 and lower.fake.updates == []  # no redeployment for it
    assert assert_agree(lower).endswith("/1")


def test_targets_written_before_per_kind_types_keep_the_deployments_type(monkeypatch):
    import deploy_app

    settings = deploy_app.Settings({"patchcore": deploy_app.Target(group="g", endpoint="e")},
                                   deploy_app.Hosting(role_arn="r", instance_type="ml.c6i.xlarge", volume_kms_key="k"))
    hosting = settings.hosting_of("patchcore")
    assert (hosting.instance_type, hosting.volume_kms_key) == ("ml.c6i.xlarge", "k")


def test_the_served_version_follows_approval_records_not_the_last_modification(world):
    first, second = register(world, 2)
    for version in (1, 2):
        registry(world).set_status(GROUP, version, APPROVED, "reviewed", by="qa")
        world.settle()
    # editing an older approved version (here its description) makes it the last modified one
    world.console.update_model_package(ModelPackageArn=first.arn, ApprovalDescription="reviewed again on line 3")
    world.settle()
    assert assert_agree(world) == second.arn
    assert len(world.fake.updates) == 1


def test_rejecting_the_only_approved_version_stops_serving(world):
    register(world, 1)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    registry(world).set_status(GROUP, 1, REJECTED, "false alarms", by="qa")
    world.settle()
    assert ENDPOINT not in world.fake.endpoints and assert_agree(world) is None
    assert f"endpoint/{ENDPOINT}/variant/AllTraffic" not in world.fake.targets
    result = world.app.handle_event({"detail-type": "IVADAS Reconcile", "detail": {"kind": "patchcore"}})
    assert result["action"] == "none" and result["reason"] == "nothing is approved yet"


def test_the_stop_is_said_in_the_result(world):
    register(world, 1)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    world.console.update_model_package(ModelPackageArn=registry(world).get(GROUP, 1).arn, ModelApprovalStatus=REJECTED)
    result = world.app.handle_event({"detail-type": "IVADAS Reconcile", "detail": {"kind": "patchcore"}})
    assert result["action"] == "stopped" and "503 model_not_deployed" in result["reason"]


def test_an_endpoint_that_fails_to_come_up_is_removed_and_its_version_rejected(world, capsys):
    broken, = register(world, 1)
    world.fake.broken_models.add("s3://artifacts/model-1.tar.gz")
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    assert ENDPOINT not in world.fake.endpoints and assert_agree(world) is None
    version = registry(world).get(GROUP, 1)
    assert version.status == REJECTED and version.history[-1]["reason"].startswith(f"{ENDPOINT} failed to come up")
    described = world.console.describe_model_package(ModelPackageName=broken.arn)
    assert "did not pass the ping health check" in described["ApprovalDescription"]  # the full reason
    assert emitted(capsys, "DeploymentFailed")


def test_an_endpoint_capturing_under_another_key_is_deployed_again_with_its_version(world, monkeypatch, capsys):
    """An endpoint deployed when data capture was written with another key (the project key, before
    captured requests moved to the inspection key, which the bucket now insists on): the scheduled
    reconcile deploys the same version again on a config that names the deployment's key, so the
    endpoint's capture is not refused, and nothing is rolled back or rejected."""
    wanted = world.env["DATA_CAPTURE_KMS_KEY_ID"]
    older = "arn:aws:kms:eu-west-1:123456789012:key/previous-capture-key"
    monkeypatch.setenv("DATA_CAPTURE_KMS_KEY_ID", older)
    world.app.settings.cache_clear()
    first, = register(world, 1)
    registry(world).set_status(GROUP, 1, APPROVED, "reviewed", by="qa")
    world.settle()
    before = world.fake.endpoints[ENDPOINT]["EndpointConfigName"]
    assert world.fake.configs[before]["DataCaptureConfig"]["KmsKeyId"] == older
    monkeypatch.setenv("DATA_CAPTURE_KMS_KEY_ID", wanted)  # the new deployment of the stack
    world.app.settings.cache_clear()
    world.run(15 * 60 + 60)  # the scheduled reconcile
    world.settle()
    after = world.fake.endpoints[ENDPOINT]["EndpointConfigName"]
    assert after != before and world.fake.configs[after]["DataCaptureConfig"]["KmsKeyId"] == wanted
    assert assert_agree(world) == first.arn  # the same version, still approved and served
    assert world.fake.calls.count("CreateModel") == 1  # its model reused
    assert world.queue.dead_letters == [] and emitted(capsys, "DeploymentRolledBack") == []
    world.run(15 * 60 + 60)  # and once it captures with the right key, reconciling changes nothing more
    world.settle()
    assert world.fake.endpoints[ENDPOINT]["EndpointConfigName"] == after and len(world.fake.updates) == 1


def test_an_approval_made_in_the_console_gets_an_approval_record(world):
    first, = register(world, 1)
    approve_in_console(world, first)
    world.settle()
    entry = registry(world).get(GROUP, 1).history[-1]
    assert (entry["status"], entry["by"]) == (APPROVED, "sagemaker") and entry["at"].startswith("2026-03-02T08:00")
    assert assert_agree(world) == first.arn


def test_events_of_other_groups_and_kinds_are_ignored(world):
    for event in ({"detail-type": "SageMaker Model Package State Change",
                   "detail": {"ModelPackageGroupName": "someone-else", "ModelApprovalStatus": "Approved"}},
                  {"detail-type": "EC2 Instance State-change Notification", "detail": {}},
                  {"detail-type": "IVADAS Reconcile", "detail": {"kind": "no-such-kind"}}):
        assert world.app.handle_event(event)["action"] == "ignored"
    assert world.fake.calls == []


def test_every_kind_registered_has_its_own_deployment_target(world):
    from inference.kinds import MODEL_KINDS

    targets = json.loads(world.env["DEPLOY_TARGETS"])
    assert set(targets) == set(MODEL_KINDS)
    assert all("_" not in t["endpoint"] and "_" not in t["group"] for t in targets.values())


def walk(world):
    """approve v1 → approve v2 → reject v2 → re-approve v2 → an alarm rolls v2 back.

    Yields after every step; the caller checks what it wants there."""
    first, second = register(world, 2)
    registry(world).set_status(GROUP, 1, APPROVED, "passed review", by="qa")
    world.settle()
    yield "approve v1", first.arn
    registry(world).set_status(GROUP, 2, APPROVED, "better on line 2", by="qa")
    world.settle()
    yield "approve v2", second.arn
    registry(world).set_status(GROUP, 2, REJECTED, "false alarms on shift B", by="qa")
    world.settle()
    yield "reject v2", first.arn
    approve_in_console(world, second)
    world.run(120)
    deploying = world.fake.endpoints[ENDPOINT]
    assert deploying["EndpointStatus"] == "Updating"  # v1's fleet serves while v2's bakes
    world.fake.set_alarm(ALARM, "ALARM")
    world.settle()
    world.fake.set_alarm(ALARM, "OK")
    yield "alarm rollback", first.arn


def test_walk_registry_and_endpoint_agree_at_every_step(world):
    """The documented end-to-end walk (README, On AWS): at every step the version the registry serves
    is the version the endpoint serves, and nothing is left in the dead-letter queue."""
    steps = []
    for step, expected in walk(world):
        assert assert_agree(world) == expected, step
        steps.append(step)
    assert steps == ["approve v1", "approve v2", "reject v2", "alarm rollback"] and world.queue.dead_letters == []
    history = [h["status"] for h in registry(world).get(GROUP, 2).history]
    assert history == ["PendingManualApproval", APPROVED, REJECTED, APPROVED, REJECTED]


def test_the_deploy_role_allows_every_call_of_the_walk(world, main_template_json):
    """Every request of the walk, and every permission AWS checks on the caller's behalf (PassRole,
    the KMS grant for the encrypted volume, the rollback alarms, auto-scaling's needs), is allowed
    by the deploy function's role as synthesized."""
    for _ in walk(world):
        pass
    statements = role_statements(main_template_json, "deploy_app.handler")
    needed = sorted({(action, resource) for principal, action, resource in world.fake.authorizations if principal == "deploy"})
    assert {action for action, _ in needed} >= {"kms:CreateGrant", "cloudwatch:DescribeAlarms", "iam:PassRole",
                                                "sagemaker:UpdateEndpointWeightsAndCapacities", "cloudwatch:PutMetricAlarm"}
    denied = [(action, resource) for action, resource in needed if not allowed(statements, action, resource)]
    assert denied == []
