"""Replaying a Lambda's real AWS calls against its synthesized role, conditions included.

`CallRecorder` hooks the default boto3 session, so every client the handler makes (S3, DynamoDB,
SageMaker runtime) reports its requests and answers. `authorizations` turns each call into what
IAM checks for it, with the request context keys a condition can test, following AWS's
"Actions, resources, and condition keys" pages and the operations' permission notes:

- ListObjectsV2: s3:ListBucket on the bucket, `s3:prefix` = the request's Prefix;
- GetObject / HeadObject: s3:GetObject on the object; a missing object is a 404 only for a caller
  that may list it (s3:ListBucket with the key as `s3:prefix`), everyone else gets 403; reading an
  SSE-KMS object needs kms:Decrypt on its key through S3 (HeadObject reads metadata only);
- PutObject with SSE-KMS: s3:PutObject and kms:GenerateDataKey through S3;
- CopyObject: s3:GetObject on the source and kms:Decrypt for it, s3:PutObject on the target and
  kms:GenerateDataKey for it;
- DeleteObject: s3:DeleteObject (a delete marker in a versioned bucket needs nothing more);
- DynamoDB PutItem, GetItem and Query on a table encrypted with a customer managed key: the
  action on the table (Query on an index: on the index) and kms:Decrypt of the table key through
  DynamoDB, as the caller;
- InvokeEndpoint: sagemaker:InvokeEndpoint on the endpoint;
- CreateProcessingJob: sagemaker:CreateProcessingJob on the job (its ARN spells the name in lower
  case), iam:PassRole of its RoleArn with `iam:PassedToService` = sagemaker.amazonaws.com, and
  sagemaker:AddTags on the job when the request carries tags;
- DescribeProcessingJob: sagemaker:DescribeProcessingJob on the job (lower case, as above);
- SSM GetParameter (a String parameter): ssm:GetParameter on the parameter.

`permitted` is IAM's evaluation of identity policies for one request: an explicit Deny wins, else
some Allow whose action, resource and every condition match. A condition on a key the request does
not carry does not match (no `...IfExists` is used here), so a prefix-conditioned ListBucket does
not cover a listing without a prefix.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import boto3

from tests.infra.deployment_harness import Resolver, function_resource
from tests.infra.strict_aws import ACCOUNT, REGION


@dataclass
class Call:
    service: str
    operation: str
    params: dict
    status: int
    #: what the answer said that IAM's checks depend on (GetObject: the object's SSEKMSKeyId)
    answer: dict = field(default_factory=dict)


@dataclass
class CallRecorder:
    """Every request made through the default boto3 session, with the HTTP status of its answer."""

    calls: list[Call] = field(default_factory=list)
    #: "service.Operation" → callable(params) -> (status, parsed): answered here instead of sent
    answers: dict = field(default_factory=dict)

    def install(self, monkeypatch) -> None:
        """A default boto3 session of its own for the test (the previous one is put back after it)."""
        session = boto3.Session(region_name=REGION)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        events = session.events
        events.register("before-parameter-build", self._keep_params)
        events.register("before-call", self._answer)
        events.register("after-call", self._record)

    @staticmethod
    def _keep_params(params, context, **_):
        context["recorded_params"] = copy.deepcopy(params)

    def _answer(self, model, context, **_):
        answer = self.answers.get(f"{model.service_model.service_name}.{model.name}")
        if answer is None:
            return None
        status, parsed = answer(context["recorded_params"])
        return _Http(status), {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}

    def _record(self, http_response, parsed, model, context, **_):
        answer = {k: v for k, v in (parsed or {}).items() if k in ("SSEKMSKeyId", "ServerSideEncryption")}
        self.calls.append(Call(model.service_model.service_name, model.name, context.get("recorded_params", {}),
                               http_response.status_code, answer))


@dataclass
class _Http:
    status_code: int
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: tuple = ()  # ((key, value), ...)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}" + (f" with {dict(self.context)}" if self.context else "")


def authorizations(call: Call, kms_key_of_bucket: dict[str, str], kms_key_of_table: dict[str, str]) -> list[Authorization]:
    """What IAM checks for one call (see the module's docstring)."""
    p, via_s3 = call.params, (("kms:ViaService", f"s3.{REGION}.amazonaws.com"),)

    def obj(bucket, key):
        return f"arn:aws:s3:::{bucket}/{key}"

    def listing(bucket, prefix):
        return Authorization("s3:ListBucket", f"arn:aws:s3:::{bucket}", (("s3:prefix", prefix),))

    def key_of(bucket):
        return kms_key_of_bucket[bucket]

    if call.service == "s3":
        bucket = p["Bucket"]
        if call.operation == "ListObjectsV2":
            return [listing(bucket, p["Prefix"]) if "Prefix" in p
                    else Authorization("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
        if call.operation in ("GetObject", "HeadObject"):
            checks = [Authorization("s3:GetObject", obj(bucket, p["Key"]))]
            if call.status == 404:
                checks.append(listing(bucket, p["Key"]))
            elif call.operation == "GetObject":  # the key the object was written with, else the bucket's default
                checks.append(Authorization("kms:Decrypt", call.answer.get("SSEKMSKeyId") or key_of(bucket), via_s3))
            return checks
        if call.operation == "PutObject":
            named = (("s3:x-amz-server-side-encryption-aws-kms-key-id", p["SSEKMSKeyId"]),) if p.get("SSEKMSKeyId") else ()
            return [Authorization("s3:PutObject", obj(bucket, p["Key"]), named),
                    Authorization("kms:GenerateDataKey", p.get("SSEKMSKeyId") or key_of(bucket), via_s3)]
        if call.operation == "CopyObject":
            source = p["CopySource"]  # botocore has made "bucket/key" (URL-quoted) of the dict by now
            if isinstance(source, str):
                source_bucket, _, source_key = unquote(source.split("?versionId=")[0]).lstrip("/").partition("/")
            else:
                source_bucket, source_key = source["Bucket"], source["Key"]
            return [Authorization("s3:GetObject", obj(source_bucket, source_key)),
                    Authorization("kms:Decrypt", key_of(source_bucket), via_s3),
                    Authorization("s3:PutObject", obj(bucket, p["Key"])),
                    Authorization("kms:GenerateDataKey", p.get("SSEKMSKeyId") or key_of(bucket), via_s3)]
        if call.operation == "DeleteObject":
            return [Authorization("s3:DeleteObject", obj(bucket, p["Key"]))]
    if call.service == "dynamodb" and call.operation in ("PutItem", "GetItem", "Query"):
        table = p["TableName"]
        target = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}" + (f"/index/{p['IndexName']}" if p.get("IndexName") else "")
        return [Authorization(f"dynamodb:{call.operation}", target),
                Authorization("kms:Decrypt", kms_key_of_table[table], (("kms:ViaService", f"dynamodb.{REGION}.amazonaws.com"),))]
    if call.service == "sagemaker-runtime" and call.operation == "InvokeEndpoint":
        return [Authorization("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{p['EndpointName']}")]
    if call.service == "sagemaker" and call.operation == "CreateProcessingJob":
        job = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{p['ProcessingJobName'].lower()}"
        checks = [Authorization("sagemaker:CreateProcessingJob", job),
                  Authorization("iam:PassRole", p["RoleArn"], (("iam:PassedToService", "sagemaker.amazonaws.com"),))]
        return checks + ([Authorization("sagemaker:AddTags", job)] if p.get("Tags") else [])
    if call.service == "sagemaker" and call.operation == "DescribeProcessingJob":
        return [Authorization("sagemaker:DescribeProcessingJob",
                              f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{p['ProcessingJobName'].lower()}")]
    if call.service == "ssm" and call.operation == "GetParameter":
        return [Authorization("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{p['Name'].lstrip('/')}")]
    raise AssertionError(f"no IAM model for {call.service}:{call.operation}; add one before trusting the replay")


# ------------------------------------------------------------------------------------------ policies

def role_statements(template: dict, handler: str) -> list[dict]:
    """The statements of the policies on a function's role, intrinsics resolved, conditions kept."""
    resolve = Resolver(template)
    _, function = function_resource(template, handler)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            found += [_normalized(s, resolve) for s in resource["Properties"]["PolicyDocument"]["Statement"]]
    return found


def policy_statements(template: dict, role_logical_id: str) -> list[dict]:
    resolve = Resolver(template)
    return [_normalized(s, resolve) for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in r["Properties"]["Roles"]
            for s in r["Properties"]["PolicyDocument"]["Statement"]]


def _normalized(statement: dict, resolve) -> dict:
    def listed(value):
        return value if isinstance(value, list) else [value]

    conditions = {op: {key: [resolve(v) for v in listed(values)] for key, values in block.items()}
                  for op, block in statement.get("Condition", {}).items()}
    return {"Effect": statement["Effect"], "Action": listed(statement["Action"]),
            "Resource": [resolve(r) for r in listed(statement["Resource"])], "Condition": conditions}


def _wildcard(pattern: str, text: str, flags=0) -> bool:
    return re.match("^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$", text, flags) is not None


OPERATORS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringNotEquals": lambda pattern, value: pattern != value,
    "StringLike": lambda pattern, value: _wildcard(pattern, value),
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": lambda pattern, value: _wildcard(pattern, value),
    "Bool": lambda pattern, value: pattern.lower() == str(value).lower(),
}


def _conditions_hold(conditions: dict, context: dict) -> bool:
    """IAM's condition evaluation: a positive operator needs the key and one matching value; a negated
    one (`...Not...`) holds when the key is absent or when the value matches none of its values."""
    for operator, block in conditions.items():
        if operator not in OPERATORS:
            raise AssertionError(f"no model of the condition operator {operator}")
        negated = "Not" in operator
        for key, patterns in block.items():
            if key not in context:
                if not negated:
                    return False
            elif not (all if negated else any)(OPERATORS[operator](p, context[key]) for p in patterns):
                return False
    return True


def bucket_policy_statements(template: dict, bucket_logical_id: str) -> list[dict]:
    """The statements of a bucket's policy, intrinsics resolved (principals are not modelled: every
    statement here is taken to name the caller, as `*` does)."""
    resolve = Resolver(template)
    return [_normalized(s, resolve) for r in template["Resources"].values()
            if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": bucket_logical_id}
            for s in r["Properties"]["PolicyDocument"]["Statement"]]


def denied_by(statements: list[dict], request: Authorization) -> bool:
    """Whether an explicit Deny among `statements` (a resource policy) refuses the request."""
    return any(s["Effect"] == "Deny" and _matches(s, request) for s in statements)


def _matches(statement: dict, request: Authorization) -> bool:
    return (any(_wildcard(a, request.action, re.IGNORECASE) for a in statement["Action"])
            and any(_wildcard(r, request.resource) for r in statement["Resource"])
            and _conditions_hold(statement["Condition"], dict(request.context)))


def permitted(statements: list[dict], request: Authorization) -> bool:
    if any(s["Effect"] == "Deny" and _matches(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, request) for s in statements)


def request(action: str, resource: str, **context) -> Authorization:
    """A request as IAM sees it (context keys spelled with `__` for `:`: s3__prefix="sensors/")."""
    return Authorization(action, resource, tuple((k.replace("__", ":"), v) for k, v in context.items()))
