"""The deployment path as the CDK app wires it, run offline against the strict fake.

EventBridge rules → the SQS FIFO deployment queue (message group per kind, visibility timeout,
maxReceiveCount → dead-letter queue) → the deploy Lambda's handler → SageMaker, Application Auto
Scaling and CloudWatch (`strict_aws.StrictAws`). The rules, the queue's settings and the Lambda's
environment are read from the synthesized template, so a walk exercises what would be deployed.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.infra.strict_aws import ACCOUNT, REGION, StrictAws

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = ROOT / "lambda" / "deploy"
if str(DEPLOY_DIR) not in sys.path:
    sys.path.insert(0, str(DEPLOY_DIR))

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
ARN_OF_TYPE = {
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{id}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{id}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{id}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{id}",
    # named as `Ref` names them, so that an ARN in a policy and a name in an environment agree
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::DynamoDB::GlobalTable": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::Scheduler::ScheduleGroup": "arn:aws:scheduler:{region}:{account}:schedule-group/{name}",
}


class Resolver:
    """CloudFormation intrinsics of one template, resolved to stable stand-ins (the same everywhere)."""

    def __init__(self, template: dict):
        self.resources = template["Resources"]

    def __call__(self, value):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        (function, argument), = value.items()
        if function == "Ref":
            return PSEUDO.get(argument) or self._physical_name(argument)
        if function == "Fn::GetAtt":
            logical, attribute = argument
            kind = self.resources[logical]["Type"]
            pattern = ARN_OF_TYPE.get(kind, "arn:aws:fake:{region}:{account}:{id}")
            return (pattern.format(account=ACCOUNT, region=REGION, id=logical, name=self._physical_name(logical))
                    if attribute == "Arn" else f"{logical}.{attribute}")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(self(p) for p in parts)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self(variables[m.group(1)]) if m.group(1) in variables
                          else self({"Ref": m.group(1)}), text)
        raise ValueError(f"cannot resolve {function}")

    def _physical_name(self, logical: str) -> str:
        properties = self.resources.get(logical, {}).get("Properties", {})
        if self.resources.get(logical, {}).get("Type") in ("AWS::Scheduler::ScheduleGroup", "AWS::SSM::Parameter") \
                and isinstance(properties.get("Name"), str):
            return properties["Name"]
        for key in ("BucketName", "QueueName", "FunctionName"):
            if isinstance(properties.get(key), str):
                return properties[key]
        return logical.lower()


def function_resource(template: dict, handler: str) -> tuple[str, dict]:
    return next((k, r) for k, r in template["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler)


def lambda_environment(template: dict, handler: str) -> dict[str, str]:
    resolve = Resolver(template)
    _, function = function_resource(template, handler)
    return {k: resolve(v) for k, v in function["Properties"]["Environment"]["Variables"].items()}


def targets_with(template: dict, kinds: tuple[str, ...] | None = None, **fields) -> dict:
    """The deploy Lambda's environment with `fields` set on the targets of `kinds` (default: every kind),
    as a per-kind setting of the CDK app would set them."""
    targets = json.loads(lambda_environment(template, "deploy_app.handler")["DEPLOY_TARGETS"])
    for kind in kinds or tuple(targets):
        targets[kind].update(fields)
    return {"DEPLOY_TARGETS": json.dumps(targets)}


def hosted_on(template: dict, instance_type: str, volume_key: bool = True, kinds: tuple[str, ...] | None = None) -> dict:
    """The deploy Lambda's environment with `kinds` (default: every kind) on another instance type, as
    `endpointInstanceTypes` would set it."""
    return targets_with(template, kinds, instance_type=instance_type, volume_key=volume_key)


def role_statements(template: dict, handler: str) -> list[dict]:
    """Every statement of the policies attached to a function's role, intrinsics resolved."""
    resolve = Resolver(template)
    _, function = function_resource(template, handler)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return [{**s, "Resource": resolve(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]),
             "Action": s["Action"] if isinstance(s["Action"], list) else [s["Action"]]} for s in statements]


def allowed(statements: list[dict], action: str, resource: str) -> bool:
    """IAM's Allow matching of action and resource (`*` and `?` wildcards, case-insensitive actions)."""
    def wildcard(pattern: str, text: str, flags=0) -> bool:
        regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
        return re.match(regex, text, flags) is not None

    return any(s["Effect"] == "Allow" and any(wildcard(a, action, re.IGNORECASE) for a in s["Action"])
               and any(wildcard(r, resource) for r in s["Resource"]) for s in statements)


# ---------------------------------------------------------------------------------------- EventBridge

def matches(pattern: dict, event: dict) -> bool:
    """EventBridge matching for the pattern forms the app uses (nested objects, lists of exact values)."""
    for key, expected in pattern.items():
        value = event.get(key)
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not matches(expected, value):
                return False
        elif value not in expected:
            return False
    return True


@dataclass
class Rule:
    pattern: dict | None
    rate_seconds: int | None
    group: str
    queue: str
    message: str | None


def rules(template: dict) -> list[Rule]:
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        props = resource["Properties"]
        rate = None
        if "ScheduleExpression" in props:
            amount, unit = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", props["ScheduleExpression"]).groups()
            rate = int(amount) * (60 if unit.startswith("minute") else 3600)
        for target in props["Targets"]:
            if "SqsParameters" not in target:  # not a deployment trigger (e.g. the origin secret's schedule)
                continue
            queue = target["Arn"]["Fn::GetAtt"][0]
            found.append(Rule(props.get("EventPattern"), rate, target["SqsParameters"]["MessageGroupId"], queue,
                              target.get("Input")))
    return found


# ---------------------------------------------------------------------------------------- SQS FIFO + Lambda

@dataclass
class Message:
    id: str
    body: str
    group: str
    sent: float
    receives: int = 0
    visible_at: float = 0.0


@dataclass
class FifoQueue:
    visibility: int
    max_receives: int
    messages: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)
    sent: int = 0

    def send(self, body: str, group: str, now: float) -> None:
        # content-based deduplication: the same body within five minutes is one message
        if any(m.body == body and now - m.sent < 300 for m in self.messages):
            return
        self.sent += 1
        self.messages.append(Message(f"m-{self.sent}", body, group, now))

    def receive(self, now: float, batch: int = 10) -> list[Message]:
        """FIFO: per group only the oldest message, and only while none of the group is in flight."""
        heads, blocked = [], set()
        for message in self.messages:
            if message.group in blocked:
                continue
            blocked.add(message.group)
            if message.visible_at <= now:
                heads.append(message)
        return heads[:batch]


def lambda_context(function_name: str, memory_mb: int = 1024, remaining_ms: int = 29_000):
    """A Lambda context as the runtime passes it, for a handler called in-process."""
    class LambdaContext:
        memory_limit_in_mb, aws_request_id = memory_mb, "request"
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"

        @staticmethod
        def get_remaining_time_in_millis():
            return remaining_ms

    LambdaContext.function_name = function_name
    return LambdaContext()


class Context:
    function_name = "ivadas-deploy"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ivadas-deploy"
    aws_request_id = "request"

    @staticmethod
    def get_remaining_time_in_millis():
        return 60_000


class World:
    """The strict fake, the deployment queue and the deploy Lambda, with one clock."""

    def __init__(self, template: dict, monkeypatch, fake: StrictAws | None = None, env: dict | None = None):
        import deploy_app

        self.template, self.fake = template, fake or StrictAws()
        self.env = {**lambda_environment(template, "deploy_app.handler"), **(env or {})}
        for key, value in {"AWS_DEFAULT_REGION": REGION, **self.env}.items():
            monkeypatch.setenv(key, value)
        deploy_app.settings.cache_clear()
        monkeypatch.setattr(deploy_app, "_clients", deploy_app.Clients(
            sagemaker=self.fake.client("sagemaker", "deploy"), autoscaling=self.fake.client("application-autoscaling", "deploy"),
            cloudwatch=self.fake.client("cloudwatch", "deploy"), s3=self.fake.client("s3", "deploy")))
        #: what people and the pipeline use (the CLI, the console): not the deploy function's role
        self.console = self.fake.client("sagemaker", "console")
        self.app = deploy_app
        self.rules = rules(template)
        queue = next(r["Properties"] for r in template["Resources"].values()
                     if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"])
        self.queue = FifoQueue(queue["VisibilityTimeout"], queue["RedrivePolicy"]["maxReceiveCount"])
        self.routed = 0
        self.next_schedule = {id(rule): rule.rate_seconds for rule in self.rules if rule.rate_seconds}
        self.results: list[dict] = []
        targets = json.loads(self.env["DEPLOY_TARGETS"])
        self.fake.alarms.update({name: "OK" for t in targets.values() for name in t["alarms"]})
        for target in targets.values():
            if target["group"] not in self.fake.groups:  # CDK creates the groups
                self.fake.op_CreateModelPackageGroup(ModelPackageGroupName=target["group"])

    def redeployed(self, monkeypatch, env: dict) -> "World":
        """The same account after the stack was deployed again with `env`: registry, endpoints and the
        events routed so far carried over, the deploy Lambda running with its new environment."""
        world = World(self.template, monkeypatch, fake=self.fake, env=env)
        world.routed = self.routed
        return world

    def route(self) -> None:
        for event in self.fake.events[self.routed:]:
            for rule in self.rules:
                if rule.pattern and matches(rule.pattern, event):
                    self.queue.send(json.dumps(event), rule.group, self.fake.clock)
        self.routed = len(self.fake.events)
        for rule in self.rules:
            if rule.rate_seconds and self.fake.clock >= self.next_schedule[id(rule)]:
                self.queue.send(rule.message, rule.group, self.fake.clock)
                self.next_schedule[id(rule)] += rule.rate_seconds

    def deliver(self) -> None:
        while batch := self.queue.receive(self.fake.clock):
            records = [{"messageId": m.id, "receiptHandle": m.id, "body": m.body, "eventSource": "aws:sqs",
                        "attributes": {"MessageGroupId": m.group, "ApproximateReceiveCount": str(m.receives + 1)},
                        "messageAttributes": {}, "md5OfBody": "", "eventSourceARN": "arn:aws:sqs:queue", "awsRegion": REGION}
                       for m in batch]
            response = self.app.handler({"Records": records}, Context())
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            for message in batch:
                message.receives += 1
                if message.id not in failed:
                    self.queue.messages.remove(message)
                elif message.receives >= self.queue.max_receives:
                    self.queue.messages.remove(message)
                    self.queue.dead_letters.append(message)
                else:
                    message.visible_at = self.fake.clock + self.queue.visibility
            self.route()

    def run(self, seconds: float, step: float = 30.0) -> None:
        end = self.fake.clock + seconds
        self.route()
        self.deliver()
        while self.fake.clock < end:
            self.fake.advance(min(step, end - self.fake.clock))
            self.route()
            self.deliver()

    def settle(self, limit: float = 4 * 3600) -> None:
        """Run until no deployment is under way and no message waits (or fail after `limit` seconds)."""
        end = self.fake.clock + limit
        self.run(0)
        while self.fake.clock < end:
            busy = any(e["EndpointStatus"] not in ("InService", "Failed") for e in self.fake.endpoints.values())
            if not busy and not self.queue.messages:
                return
            self.run(60)
        raise AssertionError(f"still busy after {limit} s: {[(m.group, m.body[:80]) for m in self.queue.messages]}")

    # ------------------------------------------------------------------ what is served

    def endpoint_serves(self, endpoint: str) -> str | None:
        """The model package the endpoint serves (None when no endpoint serves)."""
        state = self.fake.endpoints.get(endpoint)
        if state is None or state["EndpointStatus"] not in ("InService", "Updating"):  # the old fleet serves while updating
            return None
        config = self.fake.configs[state["EndpointConfigName"]]
        return self.fake.tags[config["EndpointConfigArn"]].get("ivadas:model-package")
