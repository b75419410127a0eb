"""Settings of the `autoencoder` kind, with their defaults and the reasons for them.

`level` (1–5) is the one knob most users need: it sets the network's capacity (channels of the
first stage; each further stage doubles them up to 8×, and the bottleneck's channels) and how long
it trains. Any of those can still be set on its own (`base_channels`, `latent_channels`, `epochs`).

Defaults and why:
- `image_size` 128: the network is trained on every pixel, so its cost grows with the square of the
  side; at 128 px level 3 trains a class of 200 images in a few minutes on two CPU cores. Larger
  sizes (multiples of 32, up to 512) keep finer defects at a higher cost.
- level 3: 16 → 128 channels, a 16-channel bottleneck of (size/32)² positions (1,024 numbers at
  256 px, 256 at 128 px): narrow enough that the network cannot learn to copy its input, so what it
  has not seen (a defect) comes back wrong; 60 epochs of one-cycle Adam.
- `map_sigma` 4: the squared error is smoothed with a Gaussian of σ = 4 px, as PatchCore's map,
  so that single-pixel noise does not decide the image score (the map's maximum).
- `normal_quantile` 0.99: without labelled anomalies the threshold is the 99 % quantile of the
  held-out normal scores, as for every image kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

KIND = "autoencoder"
STAGES = 5  # stride-2 stages: the bottleneck is image_size / 32 on a side
WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8)


@dataclass(frozen=True)
class Level:
    base_channels: int
    latent_channels: int
    epochs: int


LEVELS = {
    1: Level(8, 8, 20),
    2: Level(12, 12, 40),
    3: Level(16, 16, 60),
    4: Level(24, 24, 100),
    5: Level(32, 32, 150),
}


@dataclass(frozen=True)
class AutoencoderConfig:
    level: int = 3
    image_size: int = 128
    #: None: the level's
    base_channels: int | None = None
    latent_channels: int | None = None
    epochs: int | None = None
    batch_size: int = 16
    learning_rate: float = 2e-3
    map_sigma: float = 4.0
    normal_quantile: float = 0.99
    seed: int = 0
    kind: str = KIND

    def __post_init__(self):
        problems = list(_problems(self))
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def resolved(self) -> Level:
        level = LEVELS[self.level]
        return Level(self.base_channels or level.base_channels, self.latent_channels or level.latent_channels,
                     self.epochs or level.epochs)

    def to_dict(self) -> dict:
        values = asdict(self)
        values.update(asdict(self.resolved))  # the bundle records what was used, not only what was asked
        return values

    @classmethod
    def from_dict(cls, data: dict) -> "AutoencoderConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _problems(cfg: AutoencoderConfig):
    if cfg.kind != KIND:
        yield f"kind must be {KIND!r}, got {cfg.kind!r}"
    if cfg.level not in LEVELS:
        yield f"level must be one of {sorted(LEVELS)}, got {cfg.level!r}"
    if not (64 <= cfg.image_size <= 512 and cfg.image_size % 32 == 0):
        yield f"image_size must be a multiple of 32 from 64 to 512, got {cfg.image_size}"
    for name in ("base_channels", "latent_channels", "epochs"):
        value = getattr(cfg, name)
        if value is not None and not (isinstance(value, int) and 1 <= value <= 1000):
            yield f"{name} must be a whole number from 1 to 1000, got {value!r}"
    if not (1 <= cfg.batch_size <= 256):
        yield f"batch_size must be from 1 to 256, got {cfg.batch_size}"
    if not (0.0 < cfg.learning_rate < 1.0):
        yield f"learning_rate must be in (0, 1), got {cfg.learning_rate}"
    if not (0.0 <= cfg.map_sigma <= 32.0):
        yield f"map_sigma must be from 0 to 32, got {cfg.map_sigma}"
    if not (0.5 <= cfg.normal_quantile < 1.0):
        yield f"normal_quantile must be in [0.5, 1), got {cfg.normal_quantile}"


DEFAULT_CONFIG = AutoencoderConfig()
