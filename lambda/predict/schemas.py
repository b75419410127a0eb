"""Request and response shapes of the public API (pydantic)."""

from __future__ import annotations

import math
import sys
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from api_core import shown

Output = Literal["heatmap", "regions", "contributions", "events", "scores", "detections"]


def _a_number(value):
    """A reading must be a JSON number: text, null or true/false is refused in the user's words
    (pydantic's own message names its first union branch: "window.5.0.int: Input should be a valid integer")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("not_a_number", "{value} is not a number", {"value": shown(value)})
    return value


def _a_time(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PydanticCustomError("not_a_time", "{value} is neither ISO 8601 text nor epoch seconds", {"value": shown(value)})
    return value


#: A sensor reading: a JSON number (strings are refused, not parsed); NaN and infinity are refused.
Reading = Annotated[Union[StrictInt, StrictFloat], BeforeValidator(_a_number)]
#: A row's time: ISO 8601 text or epoch seconds.
Timestamp = Annotated[Union[str, StrictInt, StrictFloat], BeforeValidator(_a_time)]
#: Most rows one window may hold (a day of 1 Hz data is 86,400; windows are minutes, not days).
#: The same limits as the endpoint's (`inference.sensors.window`); this asset ships without it.
MAX_WINDOW_ROWS = 10_000
MAX_SENSORS = 512
#: Epoch seconds of 0001-01-01 and 9999-12-31T23:59:59 UTC (the endpoint's range, and ISO 8601's).
EARLIEST_EPOCH, LATEST_EPOCH = -62_135_596_800, 253_402_300_799
_FLOAT_MAX = sys.float_info.max


class Inspectable(BaseModel):
    """What one request inspects: an image (`image_base64`) or a sensor window (`window`)."""

    model_config = ConfigDict(extra="forbid")

    class_name: str = Field(min_length=1, max_length=64, description="product class (images) or asset (sensors)")
    image_base64: str | None = Field(default=None, min_length=1, description="PNG, JPEG, BMP or TIFF, base64-encoded")
    window: list[list[Reading]] | None = Field(default=None, min_length=1, max_length=MAX_WINDOW_ROWS,
                                               description="rows × sensors, oldest row first")
    sensors: list[str] | None = Field(default=None, min_length=1, max_length=MAX_SENSORS,
                                      description="the window's column names (the model's sensor names)")
    timestamps: list[Timestamp] | None = Field(default=None, description="one per row (ISO 8601 or epoch seconds)")

    @model_validator(mode="after")
    def one_input(self):
        if (self.image_base64 is None) == (self.window is None):
            raise ValueError("send exactly one of image_base64 (an image) or window (sensor readings)")
        if self.window is not None:
            check_window(self.window, self.sensors, self.timestamps)
        elif self.sensors is not None or self.timestamps is not None:
            raise ValueError("sensors and timestamps belong to a window, not an image")
        return self

    @property
    def modality(self) -> str:
        return "image" if self.image_base64 is not None else "sensors"


def check_window(window: list[list], sensors: list[str] | None, timestamps: list | None) -> None:
    widths = {len(row) for row in window}
    if len(widths) != 1 or 0 in widths:
        raise ValueError("every row of window must hold the same number of readings, at least one")
    width = widths.pop()
    if width > MAX_SENSORS:
        raise ValueError(f"window has {width} sensors; at most {MAX_SENSORS}")
    for index, row in enumerate(window):
        for column, value in enumerate(row):
            if isinstance(value, int):  # math.isfinite would overflow on an integer of 400 digits
                if abs(value) > _FLOAT_MAX:
                    raise ValueError(f"window row {index}, column {column}: an integer of {len(str(abs(value)))} digits is "
                                     "too large to be a reading")
            elif not math.isfinite(value):
                raise ValueError("window holds NaN or infinite readings; fill or drop them before sending")
    if sensors is not None and len(sensors) != width:
        raise ValueError(f"sensors names {len(sensors)} columns but each window row has {width}")
    if timestamps is not None and len(timestamps) != len(window):
        raise ValueError(f"timestamps has {len(timestamps)} entries for {len(window)} rows")
    for index, stamp in enumerate(timestamps or ()):
        # exact for integers of any size; NaN fails every comparison
        if not isinstance(stamp, str) and not EARLIEST_EPOCH <= stamp <= LATEST_EPOCH:
            quoted = repr(stamp) if len(repr(stamp)) <= 24 else f"a number of {len(str(abs(stamp)))} digits"
            raise ValueError(f"timestamp of row {index}: {quoted} is not epoch seconds of a date in the years 1-9999")


class PredictRequest(Inspectable):
    model: str | None = Field(default=None, description="a model kind (default: the configured kind for the input)")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="override of 0.5 on the normalised score")
    outputs: list[Output] | None = Field(default=None, description="optional parts of the answer (default: all the kind offers)")


class BatchItem(Inspectable):
    pass


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1)
    model: str | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    outputs: list[Output] | None = None

    @property
    def modality(self) -> str:
        kinds = {item.modality for item in self.items}
        if len(kinds) > 1:
            raise ValueError("a batch holds images or windows, not both")
        return kinds.pop()

    @model_validator(mode="after")
    def one_modality(self):
        self.modality  # noqa: B018  (raises for a mixed batch)
        return self


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
    contributions: list[dict] | None = Field(default=None, description="each sensor's share of the score at the peak row")
    events: list[dict] | None = Field(default=None, description="spans at or above the threshold, with their top sensors")
    scores: list[float | None] | None = Field(default=None, description="normalised score of every row (null before the context is full)")
    rows: int | None = Field(default=None, description="rows of the window")
    scored_rows: int | None = None
    peak_at: str | int | float | None = Field(default=None, description="timestamp (or row) of the window's highest score")
    detections: list[dict] | None = None
    timing_ms: dict[str, float]
    request_id: str
