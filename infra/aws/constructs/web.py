"""The UI and the API behind one CloudFront distribution (same origin, so no CORS), with the WAF."""

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from .api import ORIGIN_HEADER

ROOT = Path(__file__).resolve().parents[3]
API_PATHS = ("/predict*", "/models*", "/health", "/inspections*", "/assets*", "/monitoring*",
             # datasets, trainings, approval, trials, feedback (constructs/lifecycle.py)
             "/datasets*", "/trainings*", "/versions*", "/trials*", "/feedback")


def upload_origin(storage) -> str:
    """Where the browser posts dataset upload forms: the data bucket's regional virtual-hosted endpoint
    (lambda/predict/uploads.py signs forms for that URL)."""
    return f"https://{storage.data.bucket_name}.s3.{Stack.of(storage.data).region}.amazonaws.com"


class Web(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config, storage, api, web_acl_arn: str, sign_in):
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(self, "Site", block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                                encryption=s3.BucketEncryption.S3_MANAGED, removal_policy=RemovalPolicy.DESTROY,
                                auto_delete_objects=True, server_access_logs_bucket=storage.access_logs,
                                server_access_logs_prefix="site/")
        headers = cloudfront.ResponseHeadersPolicy(
            self, "SecurityHeaders", comment="IVADAS security headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    # connect-src: the UI exchanges its sign-in code for tokens at Cognito's token endpoint, and
                    # sends dataset files to the data bucket with presigned upload forms
                    content_security_policy="default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                                            f"connect-src 'self' {sign_in.base_url} {upload_origin(storage)}; "
                                            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                    override=True),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(frame_option=cloudfront.HeadersFrameOption.DENY, override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.SAME_ORIGIN, override=True),
            ))
        api_origin = origins.RestApiOrigin(api.rest_api, custom_headers={
            ORIGIN_HEADER: api.origin_secret.secret_value.unsafe_unwrap()})  # a deploy-time dynamic reference, not a literal
        api_behavior = cloudfront.BehaviorOptions(
            origin=api_origin, allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY, response_headers_policy=headers)
        self.distribution = cloudfront.Distribution(
            self, "Distribution", comment=f"{config.prefix} UI and API", default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS, response_headers_policy=headers,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED),
            additional_behaviors={path: api_behavior for path in API_PATHS},
            web_acl_id=web_acl_arn, price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True, log_bucket=storage.access_logs, log_file_prefix="cloudfront/",
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
        )
        sign_in.add_ui_client(f"https://{self.distribution.distribution_domain_name}")
        s3deploy.BucketDeployment(
            self, "Deploy", destination_bucket=self.bucket, distribution=self.distribution, distribution_paths=["/*"],
            sources=[s3deploy.Source.asset(str(ROOT / "ui"), exclude=["config.json"]),
                     s3deploy.Source.json_data("config.json", {"apiBaseUrl": "", "environment": config.environment,
                                                               "auth": sign_in.ui_config()})],
            memory_limit=256)
