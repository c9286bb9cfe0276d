"""IGEBM's residual energy network for images."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..networks.base import MODELS, NetSpec


class EnergyResBlock(nn.Module):
    """IGEBM's residual block: conv -> leaky ReLU -> conv times a learned scale (0 at init) + bypass, then 2x2
    average pooling when ``down``; a class label scales and shifts the first conv's output (FiLM, as the
    reference's per-class gains and biases)."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.scale = nn.Parameter(torch.zeros(()))  # not a zero-initialised conv: spectral norm would divide by 0
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.film = nn.Embedding(num_classes + 1, 2 * c_out) if num_classes > 0 else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
        self.down = down

    def forward(self, h: Tensor, y: Tensor | None) -> Tensor:
        z = self.conv1(h)
        if self.film is not None:
            gain, bias = self.film(y)[:, :, None, None].chunk(2, dim=1)
            z = z * (1 + gain) + bias
        z = self.scale * self.conv2(nn.functional.leaky_relu(z, 0.2))
        out = nn.functional.leaky_relu(self.skip(h) + z, 0.2)
        return nn.functional.avg_pool2d(out, 2) if self.down else out


class ResNetEnergy(nn.Module):
    """The residual energy network of IGEBM for images: conv, residual blocks with average-pool downsampling,
    leaky ReLU, a spatial sum and a linear map to one energy per sample. Scalar networks only (``cd``)."""

    def __init__(self, spec: NetSpec, *, width: int = 64, blocks: int = 3):
        super().__init__()
        if len(spec.data_shape) != 3 or not spec.scalar or spec.time_conditioned:
            raise ConfigError("model 'resnet' is an image energy network: it needs image data and --method cd")
        self.spec = spec
        c, h, _ = spec.data_shape
        self.inp = nn.Conv2d(c, width, 3, padding=1)
        widths = [width * 2 ** min(i, 2) for i in range(blocks)]
        chans = [width, *widths]
        downs = [i < blocks - 1 and h // 2 ** (i + 1) >= 2 for i in range(blocks)]
        self.blocks = nn.ModuleList(EnergyResBlock(chans[i], chans[i + 1], down=downs[i],
                                                   num_classes=spec.num_classes) for i in range(blocks))  # fmt: skip
        self.out = nn.Linear(chans[-1], 1)
        self.features: Tensor | None = None

    @property
    def output_layer(self) -> nn.Linear:
        return self.out

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        if self.spec.num_classes > 0 and y is None:
            y = torch.full(x.shape[:1], self.spec.num_classes, device=x.device, dtype=torch.long)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, y)
        self.features = nn.functional.leaky_relu(h, 0.2).sum(dim=(2, 3))
        return self.out(self.features)[:, 0]


MODELS.add("resnet", lambda spec: ResNetEnergy(spec))
