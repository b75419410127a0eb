"""Every deployment setting in one typed place, read from `cdk.json` context (`-c key=value` overrides)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

INSTANCE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


class IvadasConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str = Field(default="dev", pattern=r"^[a-z][a-z0-9-]{1,15}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str = Field(default="eu-west-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    classes: tuple[str, ...] = ("tiles", "fabric", "wood")
    default_model: Literal["patchcore", "softpatch"] = "patchcore"
    approval_mode: Literal["manual", "auto"] = "manual"
    auroc_gate: float = Field(default=0.9, ge=0.0, le=1.0)
    training_instance_type: str = "ml.m5.2xlarge"
    processing_instance_type: str = "ml.m5.xlarge"
    endpoint_instance_type: str = "ml.c6i.xlarge"
    endpoint_max_instances: int = Field(default=4, ge=1, le=20)
    alarm_email: str = ""
    api_rate_limit: int = Field(default=50, ge=1, description="requests per second, steady state")
    waf_rate_limit: int = Field(default=1000, ge=100, description="requests per 5 minutes per IP")
    inspection_image_retention_days: int = Field(default=90, ge=1)

    @field_validator("classes", mode="before")
    @classmethod
    def split_classes(cls, value):
        return tuple(c.strip() for c in value.split(",") if c.strip()) if isinstance(value, str) else value

    @field_validator("training_instance_type", "processing_instance_type", "endpoint_instance_type")
    @classmethod
    def instance_type(cls, value: str) -> str:
        if not INSTANCE.match(value):
            raise ValueError(f"{value!r} is not a SageMaker instance type like ml.m5.xlarge")
        return value

    @field_validator("alarm_email")
    @classmethod
    def email(cls, value: str) -> str:
        if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @property
    def prefix(self) -> str:
        return f"ivadas-{self.environment}"

    @property
    def pipeline_name(self) -> str:
        return f"{self.prefix}-training"

    def endpoint_name(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    def model_package_group(self, kind: str) -> str:
        return f"{self.pipeline_name}-{kind}"

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
