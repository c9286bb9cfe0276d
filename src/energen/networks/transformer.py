"""The adaLN-Zero vision transformer of DiT and SiT, the backbone of EqM's ImageNet models.

Registered as ``EqM-{S,B,L,XL}/{2,4,8}`` with the reference sizes (depth, width, heads):
S = (12, 384, 6), B = (12, 768, 12), L = (24, 1024, 16), XL = (28, 1152, 16), patch 2, 4 or 8; any other size
as ``DiT-{depth}x{width}-h{heads}/{patch}`` (e.g. ``DiT-2x64-h4/2``; ``energen convert`` names a checkpoint of
a size without a preset this way).

- The image (C, H, W) is cut into p x p patches, embedded linearly, plus fixed 2-D sin-cos positions.
- Each block is attention + MLP, each preceded by a parameter-free LayerNorm whose shift and scale, and
  the residual gate, come from the conditioning vector (adaLN-Zero: the gates start at zero, so every
  block starts as the identity and the output layer starts at zero).
- The conditioning vector is the time embedding plus the class embedding. EqM is time-free: as in the
  reference, the time embedder is kept (so released checkpoints load) and always sees t = 0.
- ``spec.scalar`` (CD, DRL energies): the output layer gives one number per patch and the energy is their
  sum.

The reference predicts a second "sigma" half of the channels that EqM discards; this module has no such
half (``energen convert`` drops it), which changes the parameter count by under 0.01%.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..networks.base import MODELS, NetSpec, TimeEmbedding, conditioning

SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}


PATCHES = (2, 4, 8)


def sincos_2d(dim: int, grid: int) -> Tensor:
    """Fixed 2-D sin-cos position embedding, (grid*grid, dim): half the features encode the row, half the
    column, each as sin then cos of 1/10000^(2i/(dim/2)) frequencies (MAE's layout)."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")

    def encode(pos: np.ndarray) -> np.ndarray:
        a = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(a), np.cos(a)], axis=1)

    # MAE's get_2d_sincos_pos_embed encodes grid[0] (the column index w) first
    return torch.from_numpy(np.concatenate([encode(cols), encode(rows)], axis=1)).float()


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fused = True  # scaled_dot_product_attention; False: plain ops, twice differentiable

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            h = F.scaled_dot_product_attention(q, k, v)
        else:
            h = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
        return self.proj(h.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """adaLN-Zero transformer block: x + gate * f(modulate(LN(x))) for f = attention, then the MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """``net(x, t, y)`` for images x of shape (B, C, H, W) with H = W divisible by ``patch``."""

    def __init__(self, spec: NetSpec, *, depth: int, dim: int, heads: int, patch: int, mlp_ratio: float = 4.0):
        super().__init__()
        if len(spec.data_shape) != 3 or spec.data_shape[1] != spec.data_shape[2] or spec.data_shape[1] % patch:
            raise ConfigError(f"a patch-{patch} transformer needs square images (C, H, W) with H divisible by "
                              f"{patch}; the data have shape {spec.data_shape}")  # fmt: skip
        self.spec, self.patch = spec, patch
        channels, size = spec.data_shape[0], spec.data_shape[1]
        self.grid = size // patch
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.register_buffer("pos_embed", sincos_2d(dim, self.grid)[None], persistent=False)
        self.time = TimeEmbedding(dim, freq_dim=256, max_period=10000.0, t_scale=1.0)
        self.label = nn.Embedding(spec.num_classes + 1, dim) if spec.num_classes > 0 else None
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(dim, patch * patch * (1 if spec.scalar else channels))
        self.grad_checkpointing = False
        self.features: Tensor | None = None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        if self.label is not None:
            nn.init.normal_(self.label.weight, std=0.02)
        for lin in (self.time.mlp[0], self.time.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        for ada in [b.ada for b in self.blocks] + [self.final.ada]:  # adaLN-Zero
            nn.init.zeros_(ada[-1].weight)
            nn.init.zeros_(ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    @property
    def output_layer(self) -> nn.Linear:
        return self.final.linear

    def set_double_backward(self, on: bool = True) -> None:
        """Attention by plain ops (twice differentiable) instead of the fused kernel: needed when a loss is
        taken on the gradient of an energy built on this network (EqM-E)."""
        for block in self.blocks:
            block.attn.fused = not on

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        if not self.spec.time_conditioned:
            t = torch.zeros(b, device=x.device)  # the reference's time-free EqM: the embedder sees t = 0
        c = conditioning(self.time, self.label, self.spec.num_classes, x, t, y)
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed.to(x.dtype)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, h, c, use_reentrant=False)
            else:
                h = block(h, c)
        self.features = h  # the last block's output (B, tokens, width): the reference's dispersive-loss input
        out = self.final(h, c)  # (B, T, p*p*C_out)
        if self.spec.scalar:
            return out.reshape(b, -1).sum(dim=1)
        p, g, ch = self.patch, self.grid, self.spec.data_shape[0]
        out = out.reshape(b, g, g, p, p, ch)
        return torch.einsum("nhwpqc->nchpwq", out).reshape(b, ch, g * p, g * p)


def reference_extra_parameters(net: DiT) -> int:
    """What the reference counts and this module does not: its ``pos_embed`` parameter (fixed) and the
    discarded sigma half of the output layer (``learn_sigma``)."""
    grid, dim = net.grid, net.final.linear.in_features
    out = net.final.linear.out_features
    return grid * grid * dim + (0 if net.spec.scalar else out * dim + out)


def _builder(depth: int, dim: int, heads: int, patch: int):
    return lambda spec: DiT(spec, depth=depth, dim=dim, heads=heads, patch=patch)


def model_name(depth: int, dim: int, heads: int, patch: int) -> str:
    """The registered name of a transformer of this size: the reference's preset when there is one."""
    size = next((s for s, d in SIZES.items() if d == (depth, dim, heads)), None)
    return f"EqM-{size}/{patch}" if size is not None and patch in PATCHES else f"DiT-{depth}x{dim}-h{heads}/{patch}"


def _custom(m) -> object:
    depth, dim, heads, patch = (int(v) for v in m.groups())
    if min(depth, dim, heads, patch) < 1 or dim % heads:
        raise ConfigError(f"model {m.group(0)!r}: depth, width, heads and patch must be >= 1, width divisible by heads")
    return _builder(depth, dim, heads, patch)


for _size, (_depth, _dim, _heads) in SIZES.items():
    for _patch in PATCHES:
        MODELS.add(f"EqM-{_size}/{_patch}", _builder(_depth, _dim, _heads, _patch))
MODELS.add_pattern(r"DiT-(\d+)x(\d+)-h(\d+)/(\d+)", _custom, "DiT-2x64-h4/2 (depth x width - heads / patch)")
