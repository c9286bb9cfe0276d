"""A tiny stand-in for the TorchScript Inception of the FID tools, with its call signature, for tests."""

from __future__ import annotations

import torch
from torch import nn


class StandIn(nn.Module):
    """uint8 (N, 3, H, W) -> ``width`` pooled features (``return_features=True``) or 10 class probabilities."""

    def __init__(self, width: int = 16, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, width, kernel, stride=2)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        h = nn.functional.interpolate(x.float() / 127.5 - 1, size=(32, 32), mode="bilinear", align_corners=False)
        f = torch.tanh(self.conv(h)).mean(dim=(2, 3))
        if return_features:
            return f
        return torch.softmax(self.head(f) if not no_output_bias else f @ self.head.weight.t(), dim=1)
