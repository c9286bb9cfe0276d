"""The built-in 2-D toy distributions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..registry import Registry

# --------------------------------------------------------------------------------------------- toys
TOYS: Registry[Callable[[int, torch.Generator], Tensor]] = Registry("toy data set")


def _rand(n, g, *shape):
    return torch.rand(n, *shape, generator=g)


def _randn(n, g, *shape):
    return torch.randn(n, *shape, generator=g)


@TOYS.register("checkerboard")
def checkerboard(n: int, g: torch.Generator) -> Tensor:
    """8 alternating unit squares of a 4 x 4 board on [-4, 4]^2 (the FFJORD toy)."""
    x1 = _rand(n, g) * 4 - 2
    x2 = _rand(n, g) - torch.randint(0, 2, (n,), generator=g).float() * 2
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2


@TOYS.register("8gaussians")
def eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    """8 Gaussians (std 0.5/sqrt 2) on a circle of radius 4/sqrt 2."""
    k = torch.randint(0, 8, (n,), generator=g).float()
    centers = torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], dim=1) * 4
    return (centers + 0.5 * _randn(n, g, 2)) / math.sqrt(2)


@TOYS.register("2spirals")
def two_spirals(n: int, g: torch.Generator) -> Tensor:
    """Two interleaved spirals (the FFJORD toy)."""
    m = n // 2 + n % 2
    r = torch.sqrt(_rand(m, g)) * 540 * (2 * math.pi) / 360
    d1 = torch.stack([-torch.cos(r) * r + _rand(m, g) * 0.5, torch.sin(r) * r + _rand(m, g) * 0.5], dim=1)
    x = torch.cat([d1, -d1])[:n] / 3
    return x + 0.1 * _randn(n, g, 2)


@TOYS.register("moons")
def moons(n: int, g: torch.Generator) -> Tensor:
    """Two interleaving half circles (as scikit-learn's ``make_moons``, noise 0.1)."""
    inner = torch.randint(0, 2, (n,), generator=g).bool()
    a = _rand(n, g) * math.pi
    outer_pts = torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    inner_pts = torch.stack([1 - torch.cos(a), 0.5 - torch.sin(a)], dim=1)
    return torch.where(inner[:, None], inner_pts, outer_pts) + 0.1 * _randn(n, g, 2)


@TOYS.register("rings")
def rings(n: int, g: torch.Generator) -> Tensor:
    """Four concentric circles of radii 1..4 (x 0.75) with small radial noise."""
    k = torch.randint(1, 5, (n,), generator=g).float() * 0.75
    a = _rand(n, g) * 2 * math.pi
    return torch.stack([torch.cos(a), torch.sin(a)], dim=1) * k[:, None] + 0.08 * _randn(n, g, 2)
