r"""The linear interpolant shared by Equilibrium Matching and flow matching, and EqM's target weighting.

Time convention (as flow_matching and SiT): :math:`\gamma = 0` is noise and :math:`\gamma = 1` is data,

.. math::  x_\gamma = \gamma\, x + (1 - \gamma)\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I).

Flow matching regresses the velocity :math:`\dot x_\gamma = x - \varepsilon` with a :math:`\gamma`-conditioned
network. Equilibrium Matching (Wang & Du, 2025) regresses the *equilibrium gradient*

.. math::  g^*(x_\gamma) = (x - \varepsilon)\, c(\gamma)

with a network that never sees :math:`\gamma`; :math:`c(1) = 0` makes the learned field vanish on the data,
so data points are the equilibria that gradient descent on the implicit energy converges to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from .registry import Registry
from .utils import expand_like


@dataclass
class PathSample:
    """A point on the path and the quantities a loss needs.

    Attributes:
        x_t: shape (B, ...), the interpolated point :math:`x_\\gamma`.
        velocity: shape (B, ...), :math:`x - \\varepsilon`.
        t: shape (B,), the interpolation weight :math:`\\gamma`.
    """

    x_t: Tensor
    velocity: Tensor
    t: Tensor


class LinearPath:
    """:math:`x_\\gamma = \\gamma x + (1-\\gamma)\\varepsilon`."""

    def sample(self, x: Tensor, eps: Tensor, t: Tensor) -> PathSample:
        """x, eps: shape (B, ...); t: shape (B,) in [0, 1]."""
        tt = expand_like(t, x)
        return PathSample(x_t=tt * x + (1 - tt) * eps, velocity=x - eps, t=t)


class Weighting:
    """The scale :math:`c(\\gamma)` of the EqM target; ``__call__`` maps shape (B,) -> (B,)."""

    def __call__(self, t: Tensor) -> Tensor:
        raise NotImplementedError


WEIGHTINGS: Registry[type[Weighting]] = Registry("c(gamma) schedule")


@WEIGHTINGS.register("truncated")
@dataclass
class TruncatedDecay(Weighting):
    """EqM's default: :math:`c = \\lambda \\min(1, (1-\\gamma)/(1-a))`; constant up to ``a``, then linear to 0."""

    a: float = 0.8
    scale: float = 4.0

    def __call__(self, t: Tensor) -> Tensor:
        return self.scale * ((1 - t) / (1 - self.a)).clamp(max=1.0)


@WEIGHTINGS.register("linear")
@dataclass
class LinearDecay(Weighting):
    """:math:`c = \\lambda (1 - \\gamma)`."""

    scale: float = 4.0

    def __call__(self, t: Tensor) -> Tensor:
        return self.scale * (1 - t)


@WEIGHTINGS.register("constant")
@dataclass
class Constant(Weighting):
    """:math:`c = \\lambda`; with a :math:`\\gamma`-conditioned network and ``scale=1`` this is flow matching."""

    scale: float = 1.0

    def __call__(self, t: Tensor) -> Tensor:
        return t.new_full(t.shape, self.scale)


def default_truncation(data_shape: tuple[int, ...]) -> float:
    """The truncation point ``a`` used when the user gives none, chosen from the data's dimension.

    A time-free network sees only :math:`x_\\gamma`; in low dimension the posterior over :math:`\\gamma`
    given :math:`x_\\gamma` is broad, so the learned field near the data mixes targets from a wide band of
    :math:`\\gamma`. A short decay band (a = 0.95) narrows that mixing; on 2-D toys it lowers sliced W1 by
    about a third (docs/methods/eqm.md). High-dimensional data keeps the reference's a = 0.8.
    """
    return 0.95 if math.prod(data_shape) <= 16 else 0.8
