"""Buckets: datasets, pipeline artifacts and inspection images, and the access logs of both."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, description="IVADAS data, models and inspection images")
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
                s3.LifecycleRule(id="inspections", prefix="inspections/", expiration=Duration.days(90)),
                s3.LifecycleRule(id="data-capture", prefix="data-capture/", expiration=Duration.days(30)),
                s3.LifecycleRule(id="infrequent", transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                                                                transition_after=Duration.days(60))]),
            ],
            **common,
        )
