"""The built-in backbones and where their ImageNet weights live, without importing torch.

Resolving a backbone whose ONNX export is already cached needs only these names and the torch hub
folder; torch itself (about 180 MB resident) is imported only to export or download.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: torchvision's published ImageNet checkpoints (IMAGENET1K_V1), as named in the torch hub cache;
#: the keys are the built-in architectures (`resnet.ARCHITECTURES`).
TORCHVISION_WEIGHTS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "wide_resnet50_2": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
}


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()`: torch's own answer once torch is loaded (it may have been set), else the
    same rule torch applies ($TORCH_HOME/hub, $TORCH_HOME defaulting to $XDG_CACHE_HOME/torch)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    torch_home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"
