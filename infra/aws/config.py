"""Every deployment setting in one typed place, read from `cdk.json` context (`-c key=value` overrides)."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inference.kinds import DEFAULT_KINDS, MODEL_KINDS, kind_info, kinds_of
from pipelines.definition import model_package_group, resource_slug

INSTANCE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
#: Families whose instances carry local NVMe instance storage. SageMaker encrypts those volumes in
#: hardware and CreateEndpointConfig fails when a KmsKeyId is given for them, so the endpoint
#: volume key is left out there. Names with a storage `d` (m5d, c6gd, g4dn, p4de, ...) are matched by
#: pattern; these have local NVMe without the letter. Omitting the key on a family that could take
#: it only falls back to SageMaker's own volume encryption, so the list errs on the side of omitting.
LOCAL_NVME_FAMILIES = frozenset({"g5", "g6", "g6e", "g7", "g7e", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "p6e-gb200",
                                 "trn1", "trn1n", "trn2", "dl1"})
STORAGE_D = re.compile(r"^[a-z]+\d+[a-z]*d[a-z]*$")
#: Bound of an auto-scaling target, invocations per instance and minute (global and per kind alike).
MAX_INVOCATIONS_PER_INSTANCE = 1_000_000
#: Instance types whose endpoints SageMaker updates without deployment guardrails (their Exclusions page).
NO_GUARDRAILS_PREFIX = "ml.inf1."
#: SageMaker names (endpoints, configs, models, package groups) allow letters, digits and hyphens.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
#: Room left in a 63-character SageMaker name after the endpoint name: `-v<version>-<8 hex>`.
VERSIONED_SUFFIX = len("-v99999-") + 8


@lru_cache(maxsize=1)
def hosting_instance_types() -> frozenset[str]:
    """The instance types SageMaker hosting accepts, from the API model botocore ships (offline)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("ProductionVariantInstanceType").enum)


def has_local_nvme(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    return family in LOCAL_NVME_FAMILIES or bool(STORAGE_D.match(family))


def _parsed(value, name: str):
    """A structured setting as `-c` gives it (JSON text) or as cdk.json does (already parsed)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not JSON: {exc}") from None


class Station(BaseModel):
    """An inspection station's API key and usage plan (POST /predict on the station API)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    quota_per_day: int = Field(default=20_000, ge=1, description="requests per day; more are refused with 429")
    rate_per_second: float = Field(default=5.0, gt=0, le=10_000, description="steady rate; bursts up to twice that")

    @property
    def burst(self) -> int:
        return max(1, math.ceil(2 * self.rate_per_second))


class IvadasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str = Field(default="dev", pattern=r"^[a-z][a-z0-9-]{1,15}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str = Field(default="eu-west-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    classes: tuple[str, ...] = ("tiles", "fabric", "wood")
    default_model: str = "patchcore"
    #: The sensor kind the feed scores with and a window without `model` gets (a sensor `defaultModel` sets it too).
    default_sensor_model: str = DEFAULT_KINDS["sensors"]
    approval_mode: Literal["manual", "auto"] = "manual"
    auroc_gate: float = Field(default=0.9, ge=0.0, le=1.0)
    training_instance_type: str = "ml.m5.2xlarge"
    processing_instance_type: str = "ml.m5.xlarge"
    endpoint_instance_type: str = "ml.c6i.xlarge"
    #: Per model kind, an endpoint instance type other than `endpoint_instance_type` (a sensor kind scores
    #: a window with far less than a vision backbone needs):
    #: -c 'ivadas:endpointInstanceTypes={"pca": "ml.m5.large", "softpatch": "ml.c6i.2xlarge"}'
    endpoint_instance_types: dict[str, str] = Field(default_factory=dict)
    #: Auto-scaling's target: invocations per instance and minute (SageMakerVariantInvocationsPerInstance)
    #: that target tracking holds every endpoint at: a starting point; set it below what one instance of the
    #: kind's type sustains, measured with `ivadas bench --suite load` on that type.
    endpoint_invocations_per_instance: int = Field(default=600, ge=1, le=MAX_INVOCATIONS_PER_INSTANCE)
    #: Per model kind, another target (a sensor kind answers in milliseconds where a vision backbone takes
    #: a hundred): -c 'ivadas:endpointInvocationsPerInstanceByKind={"pca": 6000}'
    endpoint_invocations_per_instance_by_kind: dict[str, int] = Field(default_factory=dict)
    endpoint_min_instances: int = Field(default=1, ge=1, le=20)
    endpoint_max_instances: int = Field(default=4, ge=1, le=20)
    # Blue/green deployment of a newly approved version (deploy Lambda, UpdateEndpoint).
    canary_percent: int = Field(default=25, ge=1, le=50, description="share of the green fleet taking canary traffic")
    canary_wait_seconds: int = Field(default=300, ge=0, le=3600, description="canary traffic before the rest shifts")
    bake_seconds: int = Field(default=600, ge=0, le=3600, description="alarms watched on the full green fleet")
    deployment_timeout_seconds: int = Field(default=3600, ge=600, le=14400)
    reconcile_minutes: int = Field(default=15, ge=5, le=60, description="how often registry and endpoints are compared")
    alarm_email: str = ""
    api_rate_limit: int = Field(default=50, ge=1, description="requests per second, steady state")
    waf_rate_limit: int = Field(default=1000, ge=100, description="requests per 5 minutes per IP")
    inspection_image_retention_days: int = Field(default=90, ge=1)
    #: Share of normal inspections whose image is kept (every anomalous one is), so that people can
    #: report missed defects from the history: a tenth shows them at a tenth of the storage.
    keep_normal_images_percent: float = Field(default=10.0, ge=0.0, le=100.0)
    # Access (README, Security): people sign in with Cognito, stations use API keys or SigV4.
    #: one API key and usage plan per station, e.g. -c 'ivadas:stations=[{"name": "line-1", "quotaPerDay": 50000}]'
    stations: tuple[Station, ...] = (Station(name="line-1"),)
    #: the Cognito hosted sign-in's domain prefix (globally unique in the region); default ivadas-<env>-<account>
    sign_in_domain_prefix: str | None = Field(default=None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
    #: extra sign-in callback URLs besides the distribution's own (a custom domain)
    sign_in_callback_urls: tuple[str, ...] = ()
    mfa: Literal["required", "optional"] = "required"
    origin_secret_rotation_days: int = Field(default=30, ge=1, le=365)
    #: how long the previous origin secret is still accepted after a rotation, by the API Lambda and the
    #: API's web ACL alike (CloudFront's edges take up a new origin header within minutes)
    origin_secret_grace_minutes: int = Field(default=30, ge=5, le=720)
    # The sensor feed (lambda/predict/sensor_feed.py): files under sensors/<asset>/incoming/ scored on a schedule.
    sensor_feed_enabled: bool = True
    sensor_feed_rate_minutes: int = Field(default=5, ge=1, le=60, description="how often waiting sensor files are scored")
    sensor_feed_timeout_seconds: int = Field(default=300, ge=60, le=900,
                                             description="one run; it stops taking files 30 s before this")
    # Experiment tracking (infra/aws/constructs/tracking.py): a SageMaker managed MLflow tracking server.
    mlflow_tracking_enabled: bool = True
    mlflow_server_size: Literal["Small", "Medium", "Large"] = "Small"
    # Drift monitoring (infra/aws/constructs/drift_monitoring.py): a Processing job on a schedule; each run
    # looks back one interval. Thresholds as pipelines/monitoring/thresholds.py reads them (default, per class).
    drift_monitor_rate_hours: int = Field(default=6, ge=1, le=24, description="how often drift is measured")
    drift_thresholds: dict = Field(default_factory=dict)
    #: sensor assets that get a "drift on class X" alarm too (image classes are `classes`)
    drift_alarm_assets: tuple[str, ...] = ()

    @field_validator("drift_thresholds", mode="before")
    @classmethod
    def known_thresholds(cls, value) -> dict:
        from pipelines.monitoring.thresholds import ThresholdConfig

        # `-c 'ivadas:driftThresholds={"classes": {"tiles": {"input_psi": 0.4}}}'`
        value = _parsed(value, "driftThresholds")
        ThresholdConfig.from_dict(value)  # unknown names and non-numbers stop synth with the reason
        return value

    @field_validator("stations", mode="before")
    @classmethod
    def station_settings(cls, value):
        """Stations from context: a JSON list (or its text) of {name, quotaPerDay, ratePerSecond}."""
        value = _parsed(value, "stations")
        camel = {"quotaPerDay": "quota_per_day", "ratePerSecond": "rate_per_second"}
        return tuple({camel.get(k, k): v for k, v in item.items()} if isinstance(item, dict) else item for item in value)

    @field_validator("stations")
    @classmethod
    def unique_stations(cls, value):
        names = [station.name for station in value]
        if len(set(names)) != len(names):
            raise ValueError(f"station names must be unique; got {names}")
        return value

    @field_validator("sign_in_callback_urls", mode="before")
    @classmethod
    def callback_urls(cls, value):
        urls = tuple(u.strip() for u in value.split(",") if u.strip()) if isinstance(value, str) else tuple(value)
        for url in urls:
            if not re.match(r"^https://[^\s/]+(/\S*)?$", url):
                raise ValueError(f"{url!r} is not an https:// callback URL")
        return urls

    @field_validator("classes", "drift_alarm_assets", mode="before")
    @classmethod
    def split_classes(cls, value):
        return tuple(c.strip() for c in value.split(",") if c.strip()) if isinstance(value, str) else value

    @field_validator("default_model")
    @classmethod
    def registered_kind(cls, value: str) -> str:
        if value not in MODEL_KINDS:
            raise ValueError(f"{value!r} is not a registered model kind; choose one of {list(MODEL_KINDS)}")
        return value

    @field_validator("default_sensor_model")
    @classmethod
    def sensor_kind(cls, value: str) -> str:
        if value not in kinds_of("sensors"):
            raise ValueError(f"{value!r} is not a sensor model kind; choose one of {list(kinds_of('sensors'))}")
        return value

    @field_validator("training_instance_type", "processing_instance_type")
    @classmethod
    def instance_type(cls, value: str) -> str:
        if not INSTANCE.match(value):
            raise ValueError(f"{value!r} is not a SageMaker instance type like ml.m5.xlarge")
        return value

    @field_validator("endpoint_instance_type")
    @classmethod
    def hosting_instance_type(cls, value: str) -> str:
        if value not in hosting_instance_types():
            raise ValueError(f"{value!r} is not an instance type SageMaker real-time endpoints offer (e.g. ml.c6i.xlarge)")
        if value.startswith(NO_GUARDRAILS_PREFIX):
            raise ValueError(f"{value!r}: SageMaker's deployment guardrails exclude Inf1 endpoints (a new version would take "
                             "all traffic at once, with no canary, bake time or alarm rollback); choose another type")
        return value

    @field_validator("endpoint_instance_types", mode="before")
    @classmethod
    def instance_type_per_kind(cls, value) -> dict:
        value = _parsed(value, "endpointInstanceTypes")
        if not isinstance(value, dict):
            raise ValueError("endpointInstanceTypes maps model kinds to instance types, e.g. {\"pca\": \"ml.m5.large\"}")
        for kind, instance_type in value.items():
            if kind not in MODEL_KINDS:
                raise ValueError(f"endpointInstanceTypes: {kind!r} is not a model kind; choose among {list(MODEL_KINDS)}")
            if not isinstance(instance_type, str):
                raise ValueError(f"endpointInstanceTypes: {kind!r} needs an instance type like ml.m5.large, got {instance_type!r}")
            cls.hosting_instance_type(instance_type)
        return value

    @field_validator("endpoint_invocations_per_instance", "endpoint_min_instances", "endpoint_max_instances", mode="before")
    @classmethod
    def count_not_boolean(cls, value):
        if isinstance(value, bool):  # pydantic would read true as 1
            raise ValueError(f"needs a whole number, got {value!r}")
        return value

    @field_validator("endpoint_invocations_per_instance_by_kind", mode="before")
    @classmethod
    def invocations_per_kind(cls, value) -> dict:
        name = "endpointInvocationsPerInstanceByKind"
        value = _parsed(value, name)
        if not isinstance(value, dict):
            raise ValueError(f"{name} maps model kinds to invocations per instance and minute, e.g. {{\"pca\": 6000}}")
        for kind, target in value.items():
            if kind not in MODEL_KINDS:
                raise ValueError(f"{name}: {kind!r} is not a model kind; choose among {list(MODEL_KINDS)}")
            if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= MAX_INVOCATIONS_PER_INSTANCE:
                raise ValueError(f"{name}: {kind!r} needs a whole number of invocations from 1 to "
                                 f"{MAX_INVOCATIONS_PER_INSTANCE}, got {target!r}")
        return value

    @field_validator("alarm_email")
    @classmethod
    def email(cls, value: str) -> str:
        if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @model_validator(mode="after")
    def consistent(self) -> "IvadasConfig":
        if self.endpoint_min_instances > self.endpoint_max_instances:
            raise ValueError(f"endpointMinInstances ({self.endpoint_min_instances}) is above endpointMaxInstances "
                             f"({self.endpoint_max_instances})")
        if self.canary_wait_seconds + self.bake_seconds + 1800 > self.deployment_timeout_seconds:
            raise ValueError("deploymentTimeoutSeconds must leave 30 minutes for provisioning the new fleet beyond "
                             "canaryWaitSeconds + bakeSeconds")
        if (kind_info(self.default_model).modality == "sensors" and "default_sensor_model" in self.model_fields_set
                and self.default_sensor_model != self.default_model):
            raise ValueError(f"defaultModel {self.default_model!r} is a sensor kind and defaultSensorModel says "
                             f"{self.default_sensor_model!r}: name the sensor default once")
        for kind in MODEL_KINDS:
            # models and endpoint configs are named after the endpoint plus a versioned suffix
            for name, room in ((self.endpoint_name(kind), VERSIONED_SUFFIX), (self.model_package_group(kind), 0)):
                if not SAGEMAKER_NAME.match(name) or len(name) + room > 63:
                    raise ValueError(f"{name!r} is not a usable SageMaker name (letters, digits and hyphens, with room "
                                     f"for {room} more characters within 63): shorten the environment name")
        return self

    @property
    def default_models(self) -> dict[str, str]:
        """Per modality, the kind a request naming none gets (`DEFAULT_MODELS` of the Lambdas): the
        registry's defaults, with `defaultSensorModel` for sensors and `defaultModel` for its own modality."""
        defaults = {**DEFAULT_KINDS, "sensors": self.default_sensor_model}
        defaults[kind_info(self.default_model).modality] = self.default_model
        return defaults

    @property
    def prefix(self) -> str:
        return f"ivadas-{self.environment}"

    @property
    def pipeline_name(self) -> str:
        return f"{self.prefix}-training"

    def endpoint_name(self, kind: str) -> str:
        return f"{self.prefix}-{resource_slug(kind)}"

    def model_package_group(self, kind: str) -> str:
        return model_package_group(self.pipeline_name, kind)

    def endpoint_instance_type_of(self, kind: str) -> str:
        return self.endpoint_instance_types.get(kind, self.endpoint_instance_type)

    def endpoint_invocations_per_instance_of(self, kind: str) -> int:
        return self.endpoint_invocations_per_instance_by_kind.get(kind, self.endpoint_invocations_per_instance)

    def endpoint_volume_kms_supported(self, kind: str) -> bool:
        """Whether the kind's endpoint storage volume can take our KMS key (not on local-NVMe instance types)."""
        return not has_local_nvme(self.endpoint_instance_type_of(kind))

    @property
    def deploy_lambda_timeout_seconds(self) -> int:
        """One reconciliation: a handful of SageMaker calls, never a wait for an endpoint."""
        return 60

    @property
    def deploy_queue_visibility_seconds(self) -> int:
        # AWS recommends at least six times the function timeout for an SQS event source.
        return 6 * self.deploy_lambda_timeout_seconds

    @property
    def deploy_queue_max_receives(self) -> int:
        """Enough retries of a busy endpoint to outlast the longest deployment (plus 30 minutes) before the DLQ."""
        return math.ceil((self.deployment_timeout_seconds + 1800) / self.deploy_queue_visibility_seconds)

    @classmethod
    def from_context(cls, node) -> "IvadasConfig":
        """Context keys are camelCase under `ivadas:` (e.g. `ivadas:endpointInstanceType`)."""
        values = {}
        for name in cls.model_fields:
            camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
            value = node.try_get_context(f"ivadas:{camel}")
            if value is not None:
                values[name] = value
        return cls(**values)
