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

from ..registry import Registry


@dataclass(frozen=True)
class NetSpec:
    """What a network must know about the data and the method."""

    data_shape: tuple[int, ...]
    time_conditioned: bool = False
    num_classes: int = 0
    scalar: bool = False  # one output per sample (an energy) instead of a tensor of x's shape


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t in [0, 1] followed by a small MLP (as DiT's ``TimestepEmbedder``).

    The features are cos and sin of ``t * t_scale`` times frequencies from 1 down to 1/max_period;
    ``t_scale`` defaults to ``max_period`` (SiT's transformer uses 1).
    """

    def __init__(self, dim: int, freq_dim: int = 64, max_period: float = 1000.0, t_scale: float | None = None):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.t_scale = max_period if t_scale is None else t_scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = (t.float() * self.t_scale)[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=1))


def conditioning(time: nn.Module | None, label: nn.Embedding | None, num_classes: int, x: Tensor,
                 t: Tensor | None, y: Tensor | None) -> Tensor | None:  # fmt: skip
    """The conditioning vector of a network: time embedding plus class embedding, either optional; ``None``
    when the network has neither. A missing ``y`` is the null label ``num_classes`` (unconditional)."""
    cond = None
    if time is not None:
        if t is None:
            raise ValueError("this network is time-conditioned: pass t")
        cond = time(t)
    if label is not None:
        if y is None:
            y = torch.full(x.shape[:1], num_classes, device=x.device, dtype=torch.long)
        cond = label(y) if cond is None else cond + label(y)
    return cond


MODELS: Registry = Registry("model")


def default_model(data_shape: tuple[int, ...]) -> str:
    """The model a data set gets when the user names none: chosen from the data's dimension."""
    return "mlp" if math.prod(data_shape) <= 16 else "mlp-large"
