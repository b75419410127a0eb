"""Request and response shapes of the public API (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Output = Literal["heatmap", "regions"]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str = Field(min_length=1, max_length=64, description="product class, e.g. 'tiles'")
    image_base64: str = Field(min_length=1, description="PNG, JPEG, BMP or TIFF, base64-encoded")
    model: str | None = Field(default=None, description="'patchcore' or 'softpatch' (default: the configured kind)")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="override of 0.5 on the normalised score")
    outputs: list[Output] | None = Field(default=None, description="subset of heatmap, regions (default: both)")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str = Field(min_length=1, max_length=64)
    image_base64: str = Field(min_length=1)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1)
    model: str | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    outputs: list[Output] | None = None


class Region(BaseModel):
    box: list[int] = Field(min_length=4, max_length=4, description="[x0, y0, x1, y1] in image pixels")
    score: float
    area: int


class ModelRef(BaseModel):
    kind: str
    version: str


class PredictResponse(BaseModel):
    class_name: str
    model: ModelRef
    anomaly_score: float = Field(ge=0.0, le=1.0)
    raw_score: float
    threshold: float
    is_anomaly: bool
    heatmap_png_base64: str | None = None
    regions: list[Region] | None = None
    timing_ms: dict[str, float]
    request_id: str
