"""PatchCore and SoftPatch: every default in one place, with the reason it has that value.

Training code, the CLI and the pipeline definition read these; nothing else hard-codes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODEL_KINDS = ("patchcore", "softpatch")  # the kinds this configuration describes
NOISE_METHODS = ("lof", "gaussian", "nearest")
INDEX_KINDS = ("flat", "ivf")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one trained model kind.

    Values follow the PatchCore paper (Roth et al., 2022) and SoftPatch (Jiang et al., 2022)
    unless a comment says why they differ.
    """

    kind: str = "patchcore"
    #: Input side in pixels (square). 256 as in the paper's 256 → 224 setting without the crop:
    #: crops hide defects near the border of industrial parts.
    image_size: int = 256
    #: Feature layers of the backbone; layer 3 is resized to layer 2's grid.
    layers: tuple[str, ...] = ("layer2", "layer3")
    #: Side of the local neighbourhood averaged around every patch (paper: p = 3).
    patch_size: int = 3
    #: Dimension every patch embedding is projected to (adaptive channel pooling, as the reference).
    embedding_dim: int = 1024
    #: Fraction of training patches kept in the memory bank by the greedy coreset.
    coreset_ratio: float = 0.01
    #: Dimension of the random projection used only to *select* the coreset (paper: 128).
    coreset_projection_dim: int = 128
    #: Memory-bank neighbours used to re-weight the image score (anomalib's default).
    num_neighbors: int = 9
    #: Gaussian smoothing of the anomaly map, in pixels of the input (paper: σ = 4).
    anomaly_map_sigma: float = 4.0
    #: Nearest-neighbour index: exact L2 ("flat") or approximate ("ivf", for very large banks).
    index: str = "flat"
    #: SoftPatch: noise discriminator across images at every patch position. The paper's default
    #: is the local outlier factor ("lof"); the Gaussian (Mahalanobis) discriminator is the default
    #: here because it is the one that stays within a point of exact PatchCore on real images: on
    #: the two solar-cell classes of pipelines/BENCHMARKS.md, LOF lost 2.3 and 3.3 points of image
    #: AUROC, the Gaussian 0.2 and 0.7.
    noise_method: str = "gaussian"
    #: SoftPatch: fraction τ of the noisiest training patches removed before the coreset.
    noise_fraction: float = 0.15
    #: SoftPatch: neighbours of the local outlier factor (reference implementation: 6).
    lof_k: int = 6
    #: SoftPatch: multiply distances by the outlier score of the matched bank entry at scoring.
    soft_weights: bool = True
    #: Normal-only calibration: quantile of held-out normal scores used as the threshold.
    normal_quantile: float = 0.99
    #: Seed for every random choice (projection, coreset start, splits).
    seed: int = 0

    def __post_init__(self) -> None:
        problems = list(_config_problems(self))
        if problems:
            raise ValueError("invalid model configuration: " + "; ".join(problems))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        values = dict(data)
        if "layers" in values:
            values["layers"] = tuple(values["layers"])
        return cls(**values)


def _config_problems(cfg: ModelConfig):
    if cfg.kind not in MODEL_KINDS:
        yield f"kind must be one of {MODEL_KINDS}, got {cfg.kind!r}"
    if not (32 <= cfg.image_size <= 1024) or cfg.image_size % 16:
        yield f"image_size must be a multiple of 16 in [32, 1024], got {cfg.image_size}"
    if not (0.0 < cfg.coreset_ratio <= 1.0):
        yield f"coreset_ratio must be in (0, 1], got {cfg.coreset_ratio}"
    if cfg.patch_size < 1 or cfg.patch_size % 2 == 0:
        yield f"patch_size must be odd and positive, got {cfg.patch_size}"
    if cfg.embedding_dim < len(cfg.layers):
        yield f"embedding_dim must be at least the number of layers, got {cfg.embedding_dim}"
    if cfg.num_neighbors < 1:
        yield f"num_neighbors must be positive, got {cfg.num_neighbors}"
    if cfg.index not in INDEX_KINDS:
        yield f"index must be one of {INDEX_KINDS}, got {cfg.index!r}"
    if cfg.noise_method not in NOISE_METHODS:
        yield f"noise_method must be one of {NOISE_METHODS}, got {cfg.noise_method!r}"
    if not (0.0 <= cfg.noise_fraction < 1.0):
        yield f"noise_fraction must be in [0, 1), got {cfg.noise_fraction}"
    if not (0.5 <= cfg.normal_quantile < 1.0):
        yield f"normal_quantile must be in [0.5, 1), got {cfg.normal_quantile}"
    if cfg.lof_k < 1:
        yield f"lof_k must be positive, got {cfg.lof_k}"


DEFAULT_CONFIG = ModelConfig()
__all__ = ["ModelConfig", "DEFAULT_CONFIG", "MODEL_KINDS", "NOISE_METHODS"]
