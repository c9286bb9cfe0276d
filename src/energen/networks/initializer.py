"""CDRL's initializer: a network proposing each level's Langevin start."""

from __future__ import annotations

from torch import Tensor, nn


class Initializer(nn.Module):
    r""":math:`\mu(x) = x + \mathrm{net}(x, t, y)` with the net's last layer zero-initialised (identity at start)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        nn.init.zeros_(net.output_layer.weight)
        nn.init.zeros_(net.output_layer.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return x + self.net(x, t, y)
