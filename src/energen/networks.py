"""Networks: ``net(x, t, y) -> Tensor`` of x's shape, and the explicit-energy wrapper of EqM-E.

Every network here maps x of shape (B, *data_shape) to the same shape. ``t`` (shape (B,)) is used only
when the network was built with ``time_conditioned=True`` (flow matching); EqM networks are built without
a time input at all, so they cannot depend on it. ``y`` (shape (B,), int) is used when
``num_classes > 0``; label ``num_classes`` is the null label of classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .fields import EnergyField
from .registry import Registry


@dataclass(frozen=True)
class NetSpec:
    """What a network must know about the data and the method."""

    data_shape: tuple[int, ...]
    time_conditioned: bool = False
    num_classes: int = 0
    scalar: bool = False  # one output per sample (an energy) instead of a tensor of x's shape


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1] followed by a small MLP (as DiT's ``TimestepEmbedder``)."""

    def __init__(self, dim: int, freq_dim: int = 64, max_period: float = 1000.0):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = (t.float() * self.max_period)[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=1))


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
        cond = None
        if self.time is not None:
            if t is None:
                raise ValueError("this network is time-conditioned: pass t")
            cond = self.time(t)
        if self.label is not None:
            if y is None:
                y = torch.full(x.shape[:1], self.spec.num_classes, device=x.device, dtype=torch.long)
            emb = self.label(y)
            cond = emb if cond is None else cond + emb
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, cond)
        self.features = h
        out = self.out(h)
        return out[:, 0] if self.spec.scalar else out.reshape(x.shape)


MODELS: Registry = Registry("model")
MODELS.add("mlp-small", lambda spec: MLP(spec, width=128, depth=2))
MODELS.add("mlp", lambda spec: MLP(spec, width=256, depth=3))
MODELS.add("mlp-large", lambda spec: MLP(spec, width=512, depth=4))


def default_model(data_shape: tuple[int, ...]) -> str:
    """The model a data set gets when the user names none: chosen from the data's dimension."""
    return "mlp" if math.prod(data_shape) <= 16 else "mlp-large"


class ExplicitEnergy(nn.Module):
    r"""EqM-E: a scalar energy built from a network ``h`` of x's shape, and its field :math:`-\nabla E`.

    - ``dot``: :math:`E(x) = -\sum h(x) \odot x`;
    - ``l2``:  :math:`E(x) = \tfrac12 \sum h(x)^2`.

    ``forward`` returns the field, so training and sampling treat EqM and EqM-E alike. In training mode
    the gradient keeps its graph (double backward), so a loss on the field trains the energy.
    """

    def __init__(self, net: nn.Module, kind: str = "dot"):
        super().__init__()
        if kind not in ("dot", "l2"):
            raise ValueError(f"energy kind must be 'dot' or 'l2', got {kind!r}")
        self.net, self.kind = net, kind

    @property
    def features(self) -> Tensor | None:
        return getattr(self.net, "features", None)

    def energy(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        """Shape (B, ...) -> (B,)."""
        h = self.net(x, t, y)
        if self.kind == "dot":
            return -(h * x).reshape(x.shape[0], -1).sum(dim=1)
        return 0.5 * h.pow(2).reshape(x.shape[0], -1).sum(dim=1)

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return EnergyField(self.energy, create_graph=self.training)(x, t, y)
