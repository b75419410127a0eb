"""Edge stack (us-east-1): the CloudFront-scope WAF web ACL."""

from aws_cdk import Stack
from constructs import Construct

from ..constructs.waf import WebAcl


class EdgeStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        self.web_acl = WebAcl(self, "WebAcl", config=config)
