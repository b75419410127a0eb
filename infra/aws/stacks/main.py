"""The IVADAS stack: storage, images, training pipeline, serving, API, sensor feed, web and monitoring."""

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from ..constructs.api import Api
from ..constructs.drift_monitoring import DriftMonitoring
from ..constructs.images import Images
from ..constructs.lifecycle import Lifecycle
from ..constructs.monitoring import Monitoring
from ..constructs.origin_guard import OriginGuard
from ..constructs.sensor_feed import SensorFeed
from ..constructs.serving import Serving
from ..constructs.sign_in import SignIn
from ..constructs.stations import StationApi
from ..constructs.storage import Storage
from ..constructs.tracking import ExperimentTracking
from ..constructs.training import Training
from ..constructs.web import Web

POWERTOOLS_LAYER_VERSION = 18


class IvadasStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config, web_acl_arn: str, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        powertools = int(self.node.try_get_context("ivadas:powertoolsLayerVersion") or POWERTOOLS_LAYER_VERSION)
        self.storage = Storage(self, "Storage")
        self.images = Images(self, "Images")
        self.tracking = ExperimentTracking(self, "Tracking", config=config, storage=self.storage) if config.mlflow_tracking_enabled else None
        self.training = Training(self, "Training", config=config, storage=self.storage, images=self.images, tracking=self.tracking)
        self.serving = Serving(self, "Serving", config=config, storage=self.storage, images=self.images,
                               powertools_version=powertools)
        self.sign_in = SignIn(self, "SignIn", config=config)
        self.api = Api(self, "Api", config=config, storage=self.storage, serving=self.serving, sign_in=self.sign_in,
                       powertools_version=powertools)
        self.stations = StationApi(self, "Stations", config=config, api=self.api)
        self.sensor_feed = SensorFeed(self, "SensorFeed", config=config, storage=self.storage, serving=self.serving,
                                      api=self.api, powertools_version=powertools)
        self.web = Web(self, "Web", config=config, storage=self.storage, api=self.api, web_acl_arn=web_acl_arn,
                       sign_in=self.sign_in)
        # datasets, trainings, approval, trials and feedback from the browser
        self.lifecycle = Lifecycle(self, "Lifecycle", config=config, storage=self.storage, api=self.api, web=self.web,
                                   training=self.training, images=self.images)
        self.origin_guard = OriginGuard(self, "OriginGuard", config=config, api=self.api, web=self.web,
                                        edge_web_acl_arn=web_acl_arn)
        self.monitoring = Monitoring(self, "Monitoring", config=config, storage=self.storage, serving=self.serving, api=self.api,
                                     sensor_feed=self.sensor_feed)
        self.drift = DriftMonitoring(self, "DriftMonitoring", config=config, storage=self.storage, images=self.images,
                                     api=self.api, alarm_topic=self.monitoring.topic)
        self.drift.serve_reports(self.api.function, self.storage)
        # the job queries the inspection log and reads the endpoints' data capture: decrypt, through DynamoDB and S3
        self.storage.grant_inspection_log(self.drift.role)
        self.storage.grant_inspection_objects(self.drift.role, read=True)
        self.drift.add_dashboard_row(self.monitoring.dashboard)
        CfnOutput(self, "Url", value=f"https://{self.web.distribution.distribution_domain_name}", description="UI and API")
        CfnOutput(self, "DataBucket", value=self.storage.data.bucket_name,
                  description="datasets (datasets/) and sensor files to score (sensors/<asset>/incoming/)")
        CfnOutput(self, "PipelineName", value=config.pipeline_name)
        CfnOutput(self, "UserPoolId", value=self.sign_in.pool.user_pool_id, description="people sign in here (README, Security)")
        CfnOutput(self, "StationApiUrl", value=self.stations.url,
                  description="inspection stations: POST predict with x-api-key, or iam/predict signed with SigV4")
        CfnOutput(self, "OriginSecretArn", value=self.api.origin_secret.secret_arn,
                  description="the origin secret: aws secretsmanager rotate-secret --secret-id <this> rotates it now")
