"""The convolutional autoencoder in plain torch, and the scoring module exported to ONNX with it.

Encoder: five stride-2 stages (4×4 convolution, batch normalisation, leaky ReLU), channels
`base × (1, 2, 4, 8, 8)`, then a 1×1 convolution to the `latent` channels of the bottleneck
(`image_size / 32` positions a side). The decoder mirrors it with transposed convolutions and ends
in a sigmoid, as pixels are in [0, 1].
"""

from __future__ import annotations

import io
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from inference.kinds.autoencoder.bundle import INPUT, MAP_OUTPUT, SCORE_OUTPUT
from inference.kinds.autoencoder.config import STAGES, WIDTH_MULTIPLIERS

OPSET = 17


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class Autoencoder(nn.Module):
    def __init__(self, channels: int, base: int, latent: int):
        super().__init__()
        widths = [base * m for m in WIDTH_MULTIPLIERS[:STAGES]]
        stages, width = [], channels
        for out in widths:
            stages.append(_down(width, out))
            width = out
        self.encoder = nn.Sequential(*stages, nn.Conv2d(width, latent, 1))
        layers = [nn.Conv2d(latent, width, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
        for out in reversed([base] + widths[:-1]):
            layers.append(_up(width, out))
            width = out
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D Gaussian of σ, truncated at 4 σ (scipy's default), summing to one."""
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).float()


class ReconstructionError(nn.Module):
    """RGB `[N, 3, S, S]` in [0, 1] → (smoothed squared error `[N, S, S]`, its maximum `[N]`)."""

    def __init__(self, net: Autoencoder, grey: bool, sigma: float):
        super().__init__()
        self.net, self.grey = net, grey
        kernel = gaussian_kernel(sigma) if sigma > 0 else torch.ones(1)
        self.radius = (len(kernel) - 1) // 2
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1))
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1))

    def network_input(self, image: torch.Tensor) -> torch.Tensor:
        return image.mean(dim=1, keepdim=True) if self.grey else image

    def forward(self, image: torch.Tensor):
        x = self.network_input(image)
        error = ((self.net(x) - x) ** 2).mean(dim=1, keepdim=True)
        if self.radius:
            error = F.conv2d(F.pad(error, (self.radius, self.radius, 0, 0), mode="reflect"), self.kernel_x)
            error = F.conv2d(F.pad(error, (0, 0, self.radius, self.radius), mode="reflect"), self.kernel_y)
        score_map = error[:, 0]
        return score_map, score_map.flatten(1).amax(dim=1)


def export(module: ReconstructionError, image_size: int) -> bytes:
    """The scoring module as one ONNX graph (opset 17, TorchScript exporter; batch size dynamic)."""
    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, image_size, image_size),), buffer, input_names=[INPUT],
                          output_names=[MAP_OUTPUT, SCORE_OUTPUT],
                          dynamic_axes={INPUT: {0: "n"}, MAP_OUTPUT: {0: "n"}, SCORE_OUTPUT: {0: "n"}},
                          opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def parameter_count(module: nn.Module) -> int:
    return int(sum(math.prod(p.shape) for p in module.parameters()))
