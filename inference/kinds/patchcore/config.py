"""PatchCore and SoftPatch: every default in one place, with the reason it has that value.

Training code, the CLI and the pipeline definition read these; nothing else hard-codes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODEL_KINDS = ("patchcore", "softpatch")  # the kinds this configuration describes
NOISE_METHODS = ("lof", "gaussian", "nearest")
NOISE_IMAGE_RULES = ("support", "two_fold")
INDEX_KINDS = ("flat", "ivf")
PREPROCESSING_MODES = ("resize", "letterbox", "tile")
#: Most tiles one image is cut into: bounds the work of one request (256 tiles of wide_resnet50_2 at
#: 256 px are about 30 s on two cores, the API's time limit); a larger image is refused with the reason.
MAX_TILES_PER_IMAGE = 256


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
    #: How an image becomes the backbone's input, the same at training, evaluation and serving
    #: (`inference/vision/preprocessing.py`; stored in the bundle). "resize" squashes the image to
    #: image_size² as the paper does: right for square images, and what every older bundle did, so it
    #: stays the default. "letterbox" keeps the aspect ratio and fills the rest with the backbone's
    #: mean colour: a 3:1 part is not stretched three times across, so its defects keep their shape.
    #: "tile" cuts the image into overlapping image_size² tiles at the scale `tile_size` sets, scores
    #: each and stitches the map (image score: the worst tile): a defect of a few pixels in a
    #: 5-megapixel frame survives, where a resize to 256 px erases it.
    preprocessing: str = "resize"
    #: Tile side in pixels of the original image (tile mode). 0: image_size, so the backbone sees the
    #: image's own pixels, the scale at which small defects are still visible; larger tiles are
    #: scaled down to image_size (fewer tiles, less detail).
    tile_size: int = 0
    #: Overlap of neighbouring tiles, as a fraction of a tile (tile mode). With 0.25 every pixel lies at
    #: least 1/8 of a tile (32 px, 4 cells of layer 2 at 256 px) inside some tile, away from the border
    #: where the backbone's features see its zero padding; overlaps are averaged when stitching.
    tile_overlap: float = 0.25
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
    #: SoftPatch: share of the training images left out before the coreset, those `noise_image_rule`
    #: finds most likely to be defects. On contaminated solar cells (`ivadas bench --suite noise`, 3
    #: seeds, pipelines/BENCHMARKS.md, "What the noise filters find") a fixed share beyond the
    #: contamination pays better than leaving out only the clear outliers: a test defect is hidden by any
    #: similar defect left in the bank. 0 turns the image filter off.
    noise_images: float = 0.2
    #: SoftPatch: how the images to leave out are found. "support": by how much of an image no other
    #: training image shares. Normal appearance recurs from part to part; a defect is one part's own.
    #: The patches are cut into cells (a fine greedy coreset, `SUPPORT_CELL_RATIO` in model.py); a cell
    #: fewer than `noise_support` images reach is unshared, and its patches count by their distance to
    #: the nearest shared cell. "two_fold": the image's PatchCore score against a bank of the other half
    #: of the images (the default before "support", which ranks the moved anomalies a little better and
    #: leaves out fewer rare normal images; bench above).
    noise_image_rule: str = "support"
    #: SoftPatch, "support" rule: the fewest training images that must reach a cell for its patches to
    #: count as shared. 3, not 2: the same defect in two parts (a recurring tool mark) stays unshared.
    noise_support: int = 3
    #: SoftPatch: noise discriminator across images at every patch position, for `noise_fraction` and
    #: `soft_weights` (the paper's filter). "lof" is the paper's; "gaussian" (Mahalanobis) lost less on
    #: clean images when its 15 % were removed, but neither finds the moved anomalies of the noise bench.
    noise_method: str = "gaussian"
    #: SoftPatch: fraction τ of the noisiest training patches removed before the coreset (the paper:
    #: 0.15). 0 by default: on the noise bench it removed normal patches, not the defects.
    noise_fraction: float = 0.0
    #: SoftPatch: neighbours of the local outlier factor (reference implementation: 6).
    lof_k: int = 6
    #: SoftPatch: multiply distances by the outlier score of the matched bank entry at scoring (the
    #: paper's soft weights). Off by default: with the Gaussian discriminator, weights and τ = 0.15
    #: cost 0.56 points on clean images and gained nothing at 5 % contamination.
    soft_weights: bool = False
    #: Normal-only calibration: quantile of held-out normal scores used as the threshold.
    normal_quantile: float = 0.99
    #: Seed for every random choice (projection, coreset start, splits).
    seed: int = 0
    #: Training only: megabytes of RAM for what grows with the number of training patches (the
    #: embeddings, their projection the coreset searches, SoftPatch's statistics). Both stay in RAM
    #: while they fit in half of it; beyond that they stream to files beside the training
    #: (`$IVADAS_SCRATCH`, else the system's temporary folder) and are read back in pieces
    #: (`patch_store.py`). The memory bank is the same with any value (bit for bit); 0 keeps
    #: everything in RAM. 2048: wide_resnet50_2 at 256 px makes 4.5 MB of embeddings and projection
    #: per image (0.5 MB of it the projection), so a class of up to about 220 images trains without
    #: touching the disk, and the projection of up to about 2,000 images is searched in RAM.
    memory_limit_mb: int = 2048

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
    if not (0.0 <= cfg.noise_images <= 0.5):
        yield f"noise_images must be in [0, 0.5] (a share of the training images), got {cfg.noise_images}"
    if cfg.noise_image_rule not in NOISE_IMAGE_RULES:
        yield f"noise_image_rule must be one of {NOISE_IMAGE_RULES}, got {cfg.noise_image_rule!r}"
    if cfg.noise_support < 2:
        yield f"noise_support must be at least 2 (a cell one image reaches is always its own), got {cfg.noise_support}"
    if not (0.5 <= cfg.normal_quantile < 1.0):
        yield f"normal_quantile must be in [0.5, 1), got {cfg.normal_quantile}"
    if cfg.lof_k < 1:
        yield f"lof_k must be positive, got {cfg.lof_k}"
    if cfg.preprocessing not in PREPROCESSING_MODES:
        yield f"preprocessing must be one of {PREPROCESSING_MODES}, got {cfg.preprocessing!r}"
    if cfg.tile_size < 0 or (cfg.tile_size and cfg.tile_size < cfg.image_size // 4):
        yield f"tile_size must be 0 (image_size) or at least image_size / 4 ({cfg.image_size // 4}), got {cfg.tile_size}"
    if not (0.0 <= cfg.tile_overlap <= 0.75):
        yield f"tile_overlap must be in [0, 0.75], got {cfg.tile_overlap}"
    if cfg.memory_limit_mb < 0:
        yield f"memory_limit_mb must be 0 (no limit) or positive, got {cfg.memory_limit_mb}"


DEFAULT_CONFIG = ModelConfig()


def preprocessing_of(cfg: ModelConfig, mean) -> "Preprocessing":
    """The image preprocessing `cfg` asks for, with the fill colour of a backbone normalised by `mean`."""
    from inference.vision.preprocessing import Preprocessing, fill_of

    return Preprocessing(cfg.preprocessing, cfg.image_size, cfg.tile_size, cfg.tile_overlap, fill_of(mean),
                         MAX_TILES_PER_IMAGE)


__all__ = ["ModelConfig", "DEFAULT_CONFIG", "MODEL_KINDS", "NOISE_METHODS", "NOISE_IMAGE_RULES", "PREPROCESSING_MODES", "preprocessing_of"]
