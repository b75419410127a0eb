"""Backbones: torch definitions (torchvision key names), weights, and the ONNX export."""

from pipelines.vision.backbones.export import BackboneSource, resolve_backbone

__all__ = ["BackboneSource", "resolve_backbone"]
