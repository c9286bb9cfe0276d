"""MLP backbones for vector data (time- and class-conditioned)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..networks.base import MODELS, NetSpec, TimeEmbedding, conditioning


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.lin1 = nn.Linear(dim, dim)
        self.lin2 = nn.Linear(dim, dim)

    def forward(self, h: Tensor, cond: Tensor | None) -> Tensor:
        z = self.norm(h)
        if cond is not None:
            z = z + cond
        return h + self.lin2(nn.functional.silu(self.lin1(nn.functional.silu(z))))


class MLP(nn.Module):
    """A residual MLP on flattened inputs with optional time and class embeddings added to each block.

    Returns a tensor of the input's shape, or shape (B,) when ``spec.scalar`` (an energy network).

    ``self.features`` is the last block's output, read by the optional dispersive loss.
    """

    def __init__(self, spec: NetSpec, *, width: int = 256, depth: int = 3):
        super().__init__()
        self.spec = spec
        self.dim = math.prod(spec.data_shape)
        self.inp = nn.Linear(self.dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, 1 if spec.scalar else self.dim))
        self.time = TimeEmbedding(width) if spec.time_conditioned else None
        self.label = nn.Embedding(spec.num_classes + 1, width) if spec.num_classes > 0 else None
        self.features: Tensor | None = None

    @property
    def output_layer(self) -> nn.Linear:
        return self.out[-1]

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        cond = conditioning(self.time, self.label, self.spec.num_classes, x, t, y)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, cond)
        self.features = h
        out = self.out(h)
        return out[:, 0] if self.spec.scalar else out.reshape(x.shape)


MODELS.add("mlp-small", lambda spec: MLP(spec, width=128, depth=2))


MODELS.add("mlp", lambda spec: MLP(spec, width=256, depth=3))


MODELS.add("mlp-large", lambda spec: MLP(spec, width=512, depth=4))
