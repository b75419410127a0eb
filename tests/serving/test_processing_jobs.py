"""The Processing jobs the API starts (a trial, a detector import, a monitoring run now) are named and
started one way: names within SageMaker's 63 characters that keep the prefix the API's role is
granted, and SageMaker's refusals (botocore Stubber, AWS's error codes) the same API errors in each."""

import re
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber

import tests.serving.test_predict_lambda  # noqa: F401  (puts lambda/predict on sys.path)

import imports  # noqa: E402
import processing_jobs  # noqa: E402
import routes_monitoring  # noqa: E402
import trials  # noqa: E402
from api_core import ApiError  # noqa: E402

#: SageMaker's pattern for job names (CreateProcessingJob's API reference).
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: infra/aws/config.py: `ivadas-<environment>-training`, the environment at most 16 characters.
LONGEST_PIPELINE = "ivadas-" + "e" * 16 + "-training"
ROLE = "arn:aws:iam::123456789012:role/pipeline"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ivadas-training:1"


def test_a_name_keeps_its_prefix_and_gives_up_the_end_of_its_own_part():
    name = processing_jobs.job_name("ivadas-dev-training-import-", "x" * 80)
    assert name == "ivadas-dev-training-import-" + "x" * 36 and len(name) == 63


def test_a_prefix_that_leaves_no_room_to_tell_jobs_apart_is_refused():
    with pytest.raises(ValueError, match="leaves 7 of SageMaker's 63 characters"):
        processing_jobs.job_name("p" * 56, "20261201-000000-abcdef")


def test_names_made_now_differ_within_one_second():
    moment = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    names = {processing_jobs.timestamped_name("ivadas-dev-monitor-now-", moment) for _ in range(20)}
    assert len(names) == 20 and all(n.startswith("ivadas-dev-monitor-now-20261201-120000-") for n in names)


def trial_launcher(client):
    return trials.SageMakerTrials(LONGEST_PIPELINE, "s3://data", "artifacts", IMAGE, ROLE, client=client, s3=object())


def import_launcher(client):
    return imports.SageMakerImports(LONGEST_PIPELINE, "s3://data", "artifacts", IMAGE, IMAGE, ROLE, client=client, s3=object())


TRIAL = {"id": "0123456789abcdef" * 2, "class_name": "tiles", "model_url": "s3://artifacts/pipelines/x/model.tar.gz"}
IMPORT = {"id": "20261201T120000-0a1b2c3d", "class_name": "thermal", "iou": 0.7, "by": "qe", "anomalous_classes": ["crack"],
          "files": {"graph": {"filename": "thermal.onnx"}}}


def test_with_the_longest_environment_every_name_fits_and_keeps_its_granted_prefix():
    client = boto3.client("sagemaker", region_name="us-east-1")
    trial, detector_import = trial_launcher(client).job_name(TRIAL), import_launcher(client).job_name(IMPORT)
    monitoring = routes_monitoring.job_name(f"ivadas-{'e' * 16}-monitor-")
    for name, prefix in ((trial, f"{LONGEST_PIPELINE}-trial-"), (detector_import, f"{LONGEST_PIPELINE}-import-"),
                         (monitoring, f"ivadas-{'e' * 16}-monitor-now-")):
        assert len(name) <= 63 and JOB_NAME.match(name) and name.startswith(prefix), name
    assert trial == f"{LONGEST_PIPELINE}-trial-{TRIAL['id'][:24]}"


@pytest.fixture
def sagemaker(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("sagemaker", region_name="us-east-1")
    monkeypatch.setattr(routes_monitoring, "_sagemaker", client)
    monkeypatch.setattr(routes_monitoring, "_definition", {"namePrefix": "ivadas-dev-monitor-", "request": {
        "RoleArn": ROLE, "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python", "-m", "pipelines.monitoring.job"]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 10}}}})
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


STARTERS = {
    "trial": (lambda client: trial_launcher(client).start(dict(TRIAL)),
              {"exists": "trial_job_exists", "limit": "trial_limit_reached", "refused": "trial_unavailable"}),
    "import": (lambda client: import_launcher(client).start(dict(IMPORT)),
               {"exists": "import_job_exists", "limit": "import_limit_reached", "refused": "import_unavailable"}),
    "monitoring": (lambda client: routes_monitoring.start_processing_job(),
                   {"exists": "monitoring_run_exists", "limit": "monitoring_limit_reached", "refused": "monitoring_job_refused"}),
}
REFUSALS = [
    ("ResourceInUse", "Job name must be unique within an AWS account and region, and a job with this name already exists",
     409, "exists"),
    ("ResourceLimitExceeded", "The account-level service limit 'ml.m5.large for processing job usage' is 1 Instances", 429, "limit"),
    ("ThrottlingException", "Rate exceeded", 429, None),
    ("ValidationException", "Could not assume role arn:aws:iam::123456789012:role/pipeline.", 502, "refused"),
]


@pytest.mark.parametrize("starter", sorted(STARTERS))
@pytest.mark.parametrize("code, message, status, which", REFUSALS)
def test_every_job_the_api_starts_answers_sagemakers_refusals_alike(sagemaker, starter, code, message, status, which):
    client, stub = sagemaker
    start, codes = STARTERS[starter]
    stub.add_client_error("create_processing_job", service_error_code=code, service_message=message, http_status_code=400,
                          expected_params={"ProcessingJobName": ANY, "RoleArn": ROLE, "AppSpecification": ANY,
                                           "ProcessingResources": ANY, **({} if starter == "monitoring" else {
                                               "ProcessingInputs": ANY, "ProcessingOutputConfig": ANY,
                                               "StoppingCondition": ANY, "Environment": ANY})})
    if which == "exists":  # the job of that name is someone else's request, not this one started before
        stub.add_response("describe_processing_job", described("Completed", ContainerArguments=["--other", "job"]),
                          {"ProcessingJobName": ANY})
    with pytest.raises(ApiError) as refused:
        start(client)
    assert refused.value.status == status and refused.value.code == (codes[which] if which else "throttled")
    said = refused.value.message
    if which == "exists":
        assert re.search(r"a processing job named \S+ already", said)
    elif which:
        assert message in said  # SageMaker's own reason, word for word


@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_every_job_the_api_starts_is_started_under_its_own_name(sagemaker, starter):
    client, stub = sagemaker
    start, _ = STARTERS[starter]
    stub.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/x"})
    started = start(client)
    name = started if isinstance(started, str) else started["job_name"]
    assert JOB_NAME.match(name) and (isinstance(started, str) or started["status"] == "Executing")


def described(status: str, **app) -> dict:
    """DescribeProcessingJob's answer for a job of the training image (what SageMaker echoes back)."""
    return {"ProcessingJobName": "x", "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/x",
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 10}},
            "AppSpecification": {"ImageUri": IMAGE, **app}, "CreationTime": datetime(2026, 12, 1), "ProcessingJobStatus": status}


def as_described(request: dict, status: str) -> dict:
    """The job `request` started, as DescribeProcessingJob answers for it."""
    echoed = {key: request[key] for key in ("AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "RoleArn")
              if key in request}
    return {**described(status), **echoed, "ProcessingJobName": request["ProcessingJobName"]}


def captured_request(starter: str) -> dict:
    """The CreateProcessingJob request a starter sends, seen through a client that records it."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    sent = {}
    client.meta.events.register("provide-client-params.sagemaker.CreateProcessingJob",
                                lambda params, **_: sent.update(params))
    with Stubber(client) as stub:
        stub.add_response("create_processing_job", {"ProcessingJobArn": "arn:x"})
        if starter == "monitoring":
            routes_monitoring._sagemaker = client
        STARTERS[starter][0](client)
    return sent


@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_a_start_whose_answer_was_lost_finds_its_own_job_and_does_not_start_it_twice(sagemaker, starter, monkeypatch):
    """A timed-out CreateProcessingJob that SageMaker had carried out: asked again (by botocore's retry
    or by the user), the name is taken by this very request, which is the job, started."""
    client, stub = sagemaker
    monkeypatch.setattr(processing_jobs.secrets, "token_hex", lambda n: "a1b2c3")  # the monitoring name, twice the same
    request = captured_request(starter)
    monkeypatch.setattr(routes_monitoring, "_sagemaker", client)
    stub.add_client_error("create_processing_job", "ResourceInUse", "Job name must be unique within an AWS account and "
                          "region, and a job with this name already exists", 400)
    stub.add_response("describe_processing_job", as_described(request, "InProgress"),
                      {"ProcessingJobName": request["ProcessingJobName"]})
    started = STARTERS[starter][0](client)
    name = started if isinstance(started, str) else started["job_name"]
    assert name == request["ProcessingJobName"]
    assert isinstance(started, str) or started["status"] == "Executing"


@pytest.mark.parametrize("starter", ["trial", "import"])
def test_a_taken_name_whose_job_cannot_be_read_stays_a_409(sagemaker, starter):
    client, stub = sagemaker
    start, codes = STARTERS[starter]
    stub.add_client_error("create_processing_job", "ResourceInUse", "a job with this name already exists", 400)
    stub.add_client_error("describe_processing_job", "AccessDeniedException", "User is not authorized to perform: "
                          "sagemaker:DescribeProcessingJob", 400)
    with pytest.raises(ApiError) as refused:
        start(client)
    assert refused.value.status == 409 and refused.value.code == codes["exists"]


@pytest.mark.parametrize("code, message, settled", [
    ("ValidationException", "Could not find requested job with name ivadas-x-trial-1", "never"),
    ("ResourceNotFound", "Resource not found", "never"),  # the code the API reference documents
    ("ValidationException", "1 validation error detected: Value at 'processingJobName' failed", "unknown"),
    ("ThrottlingException", "Rate exceeded", "unknown"),
])
def test_only_a_missing_job_settles_an_unanswered_start(code, message, settled):
    client = boto3.client("sagemaker", region_name="us-east-1")
    for queued_for_s, expected in ((0, "unknown"), (processing_jobs.START_SETTLED_AFTER_S, settled)):
        with Stubber(client) as stub:
            stub.add_client_error("describe_processing_job", code, message, 400,
                                  expected_params={"ProcessingJobName": "ivadas-x-trial-1"})
            assert processing_jobs.unanswered_start(client, "ivadas-x-trial-1", queued_for_s) == (expected, None)


def test_a_cut_never_leaves_a_name_ending_on_a_hyphen():
    prefix = "p" * (processing_jobs.JOB_NAME_LIMIT - 16)  # room for 16: the cut falls on the id's hyphen
    name = processing_jobs.job_name(prefix, "20261202T021500-0a1b2c3d")
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name), name
