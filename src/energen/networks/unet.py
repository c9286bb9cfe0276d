"""A convolutional U-Net for pixel-space images (CIFAR scale), in the layout of DDPM / ADM.

- Resolution levels with ``channel_mult`` times ``base`` channels; ``blocks`` residual blocks per level
  (GroupNorm, SiLU, 3x3 convolutions, dropout), self-attention at the resolutions in ``attention_at``,
  stride-2 convolutions down and nearest-neighbour upsampling + convolution up, skip connections between
  the two paths.
- Conditioning (the time of flow matching and recovery likelihood, the class label) is one embedding
  vector added inside every residual block; a network built without either has no embedding at all, so a
  time-free EqM field cannot depend on t.
- The last convolution of every residual branch and the output start at zero, so the network starts as the
  zero field (its energy starts flat).
- ``spec.scalar`` (CD, DRL energies): one output channel, summed over pixels.

Registered as ``unet`` (DDPM's CIFAR-10 model: 128 channels, multipliers 1, 2, 2, 2, two blocks,
attention at 16 x 16, about 36M parameters) and ``unet-small`` (64 channels, 1, 2, 2, attention at 8 x 8).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..networks.base import MODELS, NetSpec, TimeEmbedding, conditioning


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, c // 4) if c % 32 else 32, c)


def _zero(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int | None, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = None if emb is None else nn.Sequential(nn.SiLU(), nn.Linear(emb, c_out))
        self.out_layers = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Dropout(dropout),
                                        _zero(nn.Conv2d(c_out, c_out, 3, padding=1)))  # fmt: skip
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor | None) -> Tensor:
        h = self.in_layers(x)
        if self.emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """Multi-head self-attention over pixels; plain ops, so twice differentiable (energy gradients)."""

    def __init__(self, c: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = _zero(nn.Conv2d(c, c, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b * self.heads, 3, c // self.heads, h * w).unbind(1)
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c // self.heads), dim=-1)  # (bh, hw, hw)
        return x + self.proj((v @ a.transpose(1, 2)).reshape(b, c, h, w))


class UNet(nn.Module):
    """``net(x, t, y)`` for images x of shape (B, C, H, W) with H, W divisible by 2^(levels - 1)."""

    def __init__(self, spec: NetSpec, *, base: int = 128, channel_mult=(1, 2, 2, 2), blocks: int = 2,
                 attention_at=(16,), dropout: float = 0.1, heads: int = 1):  # fmt: skip
        super().__init__()
        if len(spec.data_shape) != 3:
            raise ConfigError(f"the U-Net is for images (C, H, W); the data have shape {spec.data_shape}")
        channels, height, width = spec.data_shape
        factor = 2 ** (len(channel_mult) - 1)
        if height % factor or width % factor:
            raise ConfigError(f"a U-Net with {len(channel_mult)} levels needs image sides divisible by {factor}; "
                              f"the data are {height} x {width}")  # fmt: skip
        self.spec = spec
        emb = 4 * base if spec.time_conditioned or spec.num_classes > 0 else None
        self.time = TimeEmbedding(emb, freq_dim=base) if spec.time_conditioned else None
        self.label = nn.Embedding(spec.num_classes + 1, emb) if spec.num_classes > 0 else None
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down, skips, c, res = nn.ModuleList(), [base], base, height
        for level, mult in enumerate(channel_mult):
            for _ in range(blocks):
                layer = nn.ModuleList([ResBlock(c, base * mult, emb, dropout)])
                c = base * mult
                if res in attention_at:
                    layer.append(SelfAttention(c, heads))
                self.down.append(layer)
                skips.append(c)
            if level < len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                res //= 2
        self.middle = nn.ModuleList([ResBlock(c, c, emb, dropout), SelfAttention(c, heads),
                                     ResBlock(c, c, emb, dropout)])  # fmt: skip
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(blocks + 1):
                layer = nn.ModuleList([ResBlock(c + skips.pop(), base * mult, emb, dropout)])
                c = base * mult
                if res in attention_at:
                    layer.append(SelfAttention(c, heads))
                if level > 0 and i == blocks:
                    upsample = nn.Upsample(scale_factor=2, mode="nearest")
                    layer.append(nn.Sequential(upsample, nn.Conv2d(c, c, 3, padding=1)))
                    res *= 2
                self.up.append(layer)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), _zero(nn.Conv2d(c, 1 if spec.scalar else channels, 3, padding=1)))
        self.features: Tensor | None = None

    @property
    def output_layer(self) -> nn.Conv2d:
        return self.out[-1]

    @staticmethod
    def _apply(layer: nn.ModuleList, h: Tensor, emb: Tensor | None) -> Tensor:
        for m in layer:
            h = m(h, emb) if isinstance(m, ResBlock) else m(h)
        return h

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        emb = conditioning(self.time, self.label, self.spec.num_classes, x, t, y)
        h = self.inp(x)
        hs = [h]
        for layer in self.down:
            h = self._apply(layer, h, emb)
            hs.append(h)
        h = self._apply(self.middle, h, emb)
        self.features = h.mean(dim=(2, 3))
        for layer in self.up:
            h = self._apply(layer, torch.cat([h, hs.pop()], dim=1), emb)
        out = self.out(h)
        return out.flatten(1).sum(dim=1) if self.spec.scalar else out


MODELS.add("unet", lambda spec: UNet(spec))


MODELS.add("unet-small", lambda spec: UNet(spec, base=64, channel_mult=(1, 2, 2), attention_at=(8,)))
