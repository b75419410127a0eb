"""ResNet-18 and Wide-ResNet-50-2 in plain torch, with torchvision's state-dict key names.

Only the stem and stages 1–3 are built: PatchCore reads layers 2 and 3, so layer4 and the classifier
would be dead weight in every exported graph. Checkpoints that contain them load all the same.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.vision.backbones.catalogue import TORCHVISION_WEIGHTS  # noqa: F401  (the weights of each architecture)


def _conv3x3(inp: int, out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, out, 3, stride=stride, padding=1, bias=False)


def _downsample(inp: int, out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inp == out:
        return None
    return nn.Sequential(nn.Conv2d(inp, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int = 1, width_per_group: int = 64):
        super().__init__()
        self.conv1 = _conv3x3(inp, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inp, planes, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int = 1, width_per_group: int = 64):
        super().__init__()
        width = int(planes * (width_per_group / 64.0))
        self.conv1 = nn.Conv2d(inp, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)  # torchvision v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inp, planes * self.expansion, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetFeatures(nn.Module):
    """Stem + layer1..layer3; forward returns the outputs named in `layers`."""

    def __init__(self, block, blocks_per_stage: list[int], width_per_group: int = 64, layers=("layer2", "layer3")):
        super().__init__()
        self.out_layers = tuple(layers)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inp = 64
        for index, (planes, count, stride) in enumerate(zip((64, 128, 256), blocks_per_stage, (1, 2, 2)), start=1):
            stage = []
            for b in range(count):
                stage.append(block(inp, planes, stride if b == 0 else 1, width_per_group))
                inp = planes * block.expansion
            setattr(self, f"layer{index}", nn.Sequential(*stage))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        outputs = {}
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in ("layer1", "layer2", "layer3"):
            x = getattr(self, name)(x)
            outputs[name] = x
            if name == self.out_layers[-1]:
                break
        return tuple(outputs[name] for name in self.out_layers)

    def load_torchvision_state_dict(self, state_dict: dict) -> None:
        """Load a full torchvision checkpoint; keys of layer4/fc are expected and ignored."""
        own = self.state_dict()
        unused_prefixes = ("layer4.", "fc.")
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own and not key.startswith(unused_prefixes)]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not match the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.load_state_dict({key: state_dict[key] for key in own})


ARCHITECTURES = {
    "resnet18": (BasicBlock, [2, 2, 2], 64),
    "wide_resnet50_2": (Bottleneck, [3, 4, 6], 128),
}



#: The stages a built-in backbone can give features of (layer4 is not built: too coarse for patches).
FEATURE_LAYERS = ("layer1", "layer2", "layer3")


def build(name: str, layers=("layer2", "layer3")) -> ResNetFeatures:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown backbone {name!r}; built-in backbones are {sorted(ARCHITECTURES)}")
    unknown = [layer for layer in layers if layer not in FEATURE_LAYERS]
    if unknown or not layers:
        raise ValueError(f"{name} has no feature layer(s) {unknown or '(none given)'}; its layers are {', '.join(FEATURE_LAYERS)}")
    block, counts, width = ARCHITECTURES[name]
    model = ResNetFeatures(block, counts, width, layers)
    model.eval()
    return model


@torch.no_grad()
def random_init(model: nn.Module, seed: int) -> None:
    """Deterministic random weights (kaiming, as torchvision's init) for tests and offline demos."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5)
