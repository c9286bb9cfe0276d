"""Unadjusted Langevin dynamics on a field."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..errors import ConfigError
from ..samplers.gradient_descent import GradientDescent
from ..samplers.registry import SAMPLERS
from ..samplers.settings import SamplerSettings


class Langevin(GradientDescent):
    r"""Unadjusted Langevin dynamics on a field :math:`f = \nabla \log p = -\nabla E`:

    .. math::  x_{k+1} = x_k + \eta\, f(x_k) + \sqrt{2\eta T}\, z_k, \qquad z_k \sim \mathcal N(0, I)

    — gradient descent with constant noise, written once and used by recovery likelihood (each noise level its
    own :math:`\eta`), contrastive divergence and the downstream tasks. For small :math:`\eta` it samples
    :math:`p \propto e^{-E/T}`: ``temperature = 1`` samples the learned density, 0 is gradient descent.

    Args:
        steps: K.
        step_size: :math:`\eta`, a float or shape (B,); each step's noise has std :math:`\sqrt{2\eta T}`.
        temperature: :math:`T` (1: exact Langevin; 0: gradient descent).
        grad_clip: clamp each element of the field to ``[-grad_clip, grad_clip]`` (IGEBM) or ``None``.
        clamp: ``(lo, hi)`` to clamp the points to after every step (the data range), or ``None``.
    """

    def __init__(self, *, steps: int, step_size: float | Tensor, temperature: float = 1.0,
                 grad_clip: float | None = None, clamp: tuple[float, float] | None = None,
                 tol: float | None = None, record: Sequence[int] = ()):  # fmt: skip
        if not temperature >= 0 or (grad_clip is not None and not grad_clip > 0):
            raise ConfigError("Langevin needs temperature >= 0 and grad_clip > 0 (or none)")
        noise = math.sqrt(temperature)  # gradient descent's noise scale: sqrt(2 eta) sqrt(T) z
        super().__init__(steps=steps, step_size=step_size, tol=tol, noise=noise, anneal=False, record=record)
        self.grad_clip, self.clamp = grad_clip, clamp

    def _direction(self, field, x, t, y, state, idx):
        d = field(x, t, y)
        return d if self.grad_clip is None else d.clamp(-self.grad_clip, self.grad_clip)

    def _project(self, x: Tensor) -> Tensor:
        return x if self.clamp is None else x.clamp(*self.clamp)


@SAMPLERS.register("langevin")
@dataclass(frozen=True)
class LangevinSettings(SamplerSettings):
    """``langevin``: K steps of eta at temperature T; ``grad_clip`` and ``clamp`` (the data's box) come from the
    run (contrastive divergence on images trains its chains so)."""

    name: ClassVar[str] = "langevin"
    step_size: float = 0.002
    temperature: float = 1.0
    tol: float | None = None
    grad_clip: float | None = None
    clamp: tuple[float, float] | None = None

    def build(self, record=()) -> Langevin:
        return Langevin(steps=self.steps, step_size=self.step_size, temperature=self.temperature, tol=self.tol,
                        grad_clip=self.grad_clip, clamp=self.clamp, record=record)  # fmt: skip
