"""SageMaker Processing jobs the API starts: a trial (trials.py), a detector import (imports.py) and a
monitoring pass asked for now (routes_monitoring.py).

Each caller writes its own CreateProcessingJob request (image, inputs, arguments, role); this module
names the job within SageMaker's limit, starts it, and turns SageMaker's refusals into the API's
errors, the same way for all three:

    ResourceInUse                                   409  a job of that name exists, and it is not this one
    ResourceLimitExceeded                           429  the account's quota of processing jobs is used up
    ThrottlingException, TooManyRequestsException   429  `throttled`, as for every other AWS call of the API
    ValidationException and anything else           502  SageMaker refused the request (a role it cannot
                                                         assume, an image it cannot pull, ...)

A job of that name that is this very request (the same image, command, inputs and outputs) is the
job an earlier call started whose answer was lost (botocore retrying a timed-out call, an API call
cut off and sent again): it is taken as started, not started twice and not refused for ever.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from botocore.exceptions import BotoCoreError, ClientError

from api_core import ApiError

#: SageMaker's job names: at most 63 letters, digits and hyphens, starting with a letter or digit.
JOB_NAME_LIMIT = 63
#: The least of a name's own part that must fit after its prefix for names to stay apart.
MIN_UNIQUE = 8
THROTTLED = ("ThrottlingException", "TooManyRequestsException")


@dataclass(frozen=True)
class JobWords:
    """How the API speaks of one kind of job in its errors; the UI keys its texts on the codes."""

    what: str  # in messages: "the trial"
    refused: str  # 502: SageMaker refused the request
    exists: str  # 409: a job of that name exists
    limit_reached: str  # 429: the account's quota of processing jobs is used up


def job_name(prefix: str, unique: str) -> str:
    """`<prefix><unique>` cut to SageMaker's limit. The prefix stays whole (the API's role may start
    jobs of that prefix only, `<prefix>*`); the unique part gives up its end, and a hyphen the cut
    leaves last (SageMaker's names end on a letter or digit)."""
    room = JOB_NAME_LIMIT - len(prefix)
    if room < MIN_UNIQUE:
        raise ValueError(f"the job name prefix {prefix!r} leaves {room} of SageMaker's {JOB_NAME_LIMIT} characters; "
                         f"names need at least {MIN_UNIQUE} of their own")
    return prefix + unique[:room].rstrip("-")


def timestamped_name(prefix: str, now: datetime | None = None) -> str:
    """`<prefix><UTC time>-<random>` for a job with no record of its own to name it after: two requests
    in the same second differ by their random part (SageMaker refuses a name used before)."""
    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return job_name(prefix, f"{moment}-{secrets.token_hex(3)}")


def s3_input(name: str, s3_uri: str, local_path: str) -> dict:
    """A ProcessingInput: everything under the S3 prefix copied to `local_path` before the job runs."""
    return {"InputName": name, "S3Input": {"S3Uri": s3_uri, "LocalPath": local_path, "S3DataType": "S3Prefix",
                                           "S3InputMode": "File"}}


def s3_output(name: str, s3_uri: str, local_path: str) -> dict:
    """ProcessingOutputConfig of one output: `local_path` uploaded to `s3_uri` once the job has ended."""
    return {"Outputs": [{"OutputName": name, "S3Output": {"S3Uri": s3_uri, "LocalPath": local_path,
                                                          "S3UploadMode": "EndOfJob"}}]}


def one_instance(instance_type: str, volume_gb: int) -> dict:
    """ProcessingResources of a job that runs on one instance."""
    return {"ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": volume_gb}}


def start(client, name: str, request: dict, words: JobWords) -> str:
    """CreateProcessingJob of `request` (everything but the name) as `name`; SageMaker's refusal is an
    ApiError in the API's words."""
    try:
        client.create_processing_job(ProcessingJobName=name, **request)
    except ClientError as exc:
        if not (error_code(exc) == "ResourceInUse" and started_already(client, name, request)):
            raise api_error(exc, name, words) from None
    return name


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def started_already(client, name: str, request: dict) -> bool:
    """Whether the job named `name` is `request` itself: the same container, arguments, inputs and
    outputs (the names carry a record's id, so this is the record's own job, started before)."""
    try:
        job = client.describe_processing_job(ProcessingJobName=name)
    except (ClientError, BotoCoreError):
        return False  # gone, not readable or not reachable: the name stays taken, and the 409 says so
    return what_it_does(job) == what_it_does(request)


#: A record still Queued with no job this long after its start was asked for has no start call
#: running any more: the API answers within API Gateway's 29 s.
START_SETTLED_AFTER_S = 300


def unanswered_start(client, name: str, queued_for_s: float) -> tuple[str, dict | None]:
    """What became of a start whose call never answered (a timeout, a lost connection), asked by the
    job's name: ("started", the job), ("never", None) once the call has surely ended without a job,
    or ("unknown", None) while that cannot be told yet (too early, or SageMaker not answering)."""
    try:
        return "started", client.describe_processing_job(ProcessingJobName=name)
    except ClientError as exc:
        if not job_not_found(exc):  # throttled, denied, another refusal: ask again later
            return "unknown", None
        return ("never" if queued_for_s >= START_SETTLED_AFTER_S else "unknown"), None


def job_not_found(exc: ClientError) -> bool:
    """DescribeProcessingJob's "no such job": documented as ResourceNotFound, answered by SageMaker as a
    ValidationException "Could not find requested job with name ..."."""
    code, message = error_code(exc), exc.response.get("Error", {}).get("Message", "")
    return code == "ResourceNotFound" or (code == "ValidationException" and "Could not find" in message)


def what_it_does(job: dict) -> tuple:
    app = job.get("AppSpecification", {})
    return (app.get("ImageUri"), app.get("ContainerEntrypoint"), app.get("ContainerArguments"),
            [(i.get("InputName"), i.get("S3Input", {}).get("S3Uri")) for i in job.get("ProcessingInputs", [])],
            [(o.get("OutputName"), o.get("S3Output", {}).get("S3Uri"))
             for o in job.get("ProcessingOutputConfig", {}).get("Outputs", [])])


def api_error(exc: ClientError, name: str, words: JobWords) -> ApiError:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "") or "error", error.get("Message", "")
    if code == "ResourceInUse":
        return ApiError(409, words.exists, f"SageMaker has a processing job named {name} already, so {words.what} was "
                                           "not started")
    if code == "ResourceLimitExceeded":
        return ApiError(429, words.limit_reached, f"SageMaker's quota for processing jobs is reached ({message}); "
                                                  "ask again when a running job has finished")
    if code in THROTTLED:
        return ApiError(429, "throttled", "too many requests; retry shortly")
    return ApiError(502, words.refused, f"SageMaker refused to start {words.what} ({code}: {message or 'no reason given'})")
