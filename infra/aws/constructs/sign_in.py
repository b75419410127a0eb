"""People sign in: a Cognito user pool with the groups the API's route table knows (inspector <
engineer < admin), Cognito's hosted sign-in, and the UI's app client (authorization code with PKCE,
no client secret: the UI is a public client running in the browser).

No one signs themselves up: an admin creates users (README, Security: the first admin with
`aws cognito-idp admin-create-user` and `admin-add-user-to-group`)."""

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

#: group → what it may do (lambda/predict/access.py enforces it per route); precedence: lower wins
GROUPS = {"admin": (1, "everything, including what no other group may do"),
          "engineer": (2, "inspectors' rights, plus datasets, trainings, trials, approval and rejection of model versions"),
          "inspector": (3, "inspect images and sensor windows, read the history, models and machines")}


class SignIn(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config):
        super().__init__(scope, construct_id)
        self.config = config
        self.pool = cognito.UserPool(
            self, "Users", user_pool_name=f"{config.prefix}-users", self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(username=True, email=True), sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(email=cognito.StandardAttribute(required=True, mutable=True)),
            password_policy=cognito.PasswordPolicy(min_length=12, require_digits=True, require_lowercase=True,
                                                   require_uppercase=True, require_symbols=True,
                                                   temp_password_validity=Duration.days(3)),
            mfa=cognito.Mfa.REQUIRED if config.mfa == "required" else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY, deletion_protection=True,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            removal_policy=RemovalPolicy.RETAIN)
        self.groups = {name: cognito.CfnUserPoolGroup(self, f"Group{name.title()}", user_pool_id=self.pool.user_pool_id,
                                                      group_name=name, precedence=precedence, description=text)
                       for name, (precedence, text) in GROUPS.items()}
        prefix = config.sign_in_domain_prefix or f"{config.prefix}-{Aws.ACCOUNT_ID}"
        self.domain = self.pool.add_domain("Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix))
        self.client: cognito.UserPoolClient | None = None

    @property
    def base_url(self) -> str:
        return self.domain.base_url()

    def add_ui_client(self, site_url: str) -> cognito.UserPoolClient:
        """The UI's app client: authorization code with PKCE only (Cognito requires PKCE of public
        clients for the code grant it issues without a secret), ID tokens valid one hour."""
        urls = [f"{site_url}/", *self.config.sign_in_callback_urls]
        self.client = self.pool.add_client(
            "UiClient", user_pool_client_name=f"{self.config.prefix}-ui", generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False, client_credentials=False),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=urls, logout_urls=urls),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            id_token_validity=Duration.hours(1), access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(12), prevent_user_existence_errors=True, enable_token_revocation=True)
        return self.client

    def ui_config(self) -> dict:
        """`config.json`'s `auth`: the same keys the local stack's sign-in gives the UI."""
        return {"authorizeUrl": f"{self.base_url}/oauth2/authorize", "tokenUrl": f"{self.base_url}/oauth2/token",
                "logoutUrl": f"{self.base_url}/logout", "clientId": self.client.user_pool_client_id,
                "scopes": "openid email profile"}
