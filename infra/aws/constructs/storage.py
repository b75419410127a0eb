"""Buckets: datasets, pipeline artifacts and inspection images, and the access logs of both; the two
keys that encrypt them.

- The project key encrypts datasets, models, pipeline artifacts and reports (both buckets'
  default), used by the roles that train, deploy and serve.
- The inspection key encrypts what the plant's inspections leave behind: the images kept under
  `inspections/` of the artifacts bucket (S3 takes the key per object: the writer names it, and the
  bucket policy refuses a PutObject under `inspections/` that names another or none), the requests
  the endpoints capture under `data-capture/` (the deploy Lambda names the key in each endpoint's
  DataCaptureConfig; the same refusal holds there) and the inspection log's table. Only the roles that record, read or monitor
  inspections may use it, and only through S3 or DynamoDB (`grant_inspection_objects`,
  `grant_inspection_log`): the pipeline's and the deploy Lambda's roles, which may read every object
  of the artifacts bucket, cannot decrypt an inspection image or a captured request.
"""

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

#: where kept inspection images live in the artifacts bucket (inspections/<day>/<request id>.img)
INSPECTIONS_PREFIX = "inspections/"
#: where the endpoints' data capture lives (data-capture/<kind>/<endpoint>/<variant>/yyyy/mm/dd/hh/...)
DATA_CAPTURE_PREFIX = "data-capture/"
#: the artifacts bucket's prefixes that hold inspection data: written only with the inspection key
INSPECTION_DATA_PREFIXES = (INSPECTIONS_PREFIX, DATA_CAPTURE_PREFIX)


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, description="IVADAS datasets, models and pipeline artifacts")
        self.inspection_key = kms.Key(
            self, "InspectionKey", enable_key_rotation=True,
            description="IVADAS inspection data: kept inspection images and the inspection log")
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
        )
        common = dict(encryption=s3.BucketEncryption.KMS, encryption_key=self.key, bucket_key_enabled=True,
                      block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, removal_policy=RemovalPolicy.RETAIN,
                      server_access_logs_bucket=self.access_logs)
        self.data = s3.Bucket(self, "Data", server_access_logs_prefix="data/", versioned=True,
                              lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))], **common)
        self.artifacts = s3.Bucket(
            self, "Artifacts", server_access_logs_prefix="artifacts/", versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(id="inspections", prefix=INSPECTIONS_PREFIX, expiration=Duration.days(90)),
                s3.LifecycleRule(id="data-capture", prefix=DATA_CAPTURE_PREFIX, expiration=Duration.days(30)),
                s3.LifecycleRule(id="infrequent", transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                                                                transition_after=Duration.days(60))]),
            ],
            **common,
        )
        # An image kept under inspections/ or a request captured under data-capture/ written with the
        # bucket's default (the project key) could be read by every role that reads the bucket: such a
        # write is refused, whoever makes it. SageMaker writes data capture SSE-KMS with the KmsKeyId of
        # the endpoint config's DataCaptureConfig, which the deploy Lambda sets to the inspection key's ARN.
        self.artifacts.add_to_resource_policy(iam.PolicyStatement(
            effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()], actions=["s3:PutObject"],
            resources=[self.artifacts.arn_for_objects(f"{prefix}*") for prefix in INSPECTION_DATA_PREFIXES],
            conditions={"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": self.inspection_key.key_arn}}))

    def _via(self, service: str) -> dict:
        return {"StringEquals": {"kms:ViaService": f"{service}.{Stack.of(self).region}.amazonaws.com"}}

    def grant_inspection_objects(self, grantee: iam.IGrantable, *, write: bool = False, read: bool = False) -> None:
        """The inspection key through S3 only: GenerateDataKey to write a kept image or a captured request
        (PutObject with SSE-KMS), Decrypt to read one. The object permissions themselves are the
        caller's to grant, by prefix."""
        actions = (["kms:GenerateDataKey"] if write else []) + (["kms:Decrypt"] if read else [])
        if not actions:
            raise ValueError("grant_inspection_objects: say write=True, read=True or both")
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=actions, resources=[self.inspection_key.key_arn], conditions=self._via("s3")))

    def grant_inspection_log(self, grantee: iam.IGrantable) -> None:
        """The inspection key through DynamoDB only: DynamoDB decrypts the table's key as the caller for
        every read and write of the inspection log. The table actions are the caller's to grant."""
        grantee.grant_principal.add_to_principal_policy(iam.PolicyStatement(
            actions=["kms:Decrypt"], resources=[self.inspection_key.key_arn], conditions=self._via("dynamodb")))
