"""Unadjusted Langevin dynamics on a field."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..errors import ConfigError
from ..samplers.gradient_descent import GradientDescent
from ..samplers.registry import SAMPLERS


class Langevin(GradientDescent):
    r"""Unadjusted Langevin dynamics on a field :math:`f = \nabla \log p = -\nabla E`:

    .. math::  x_{k+1} = x_k + \tfrac{s^2}{2} f(x_k) + T\, s\, z_k, \qquad z_k \sim \mathcal N(0, I)

    — gradient descent with :math:`\eta = s^2/2` and constant temperature, written once and used by
    recovery likelihood (each noise level its own ``s``), contrastive divergence and the downstream tasks.
    At ``temperature = 1`` and small ``s`` it samples :math:`p \propto e^{-E}`.

    Args:
        steps: K.
        step_size: :math:`s`, the standard deviation of each step's noise; a float or shape (B,).
        temperature: :math:`T` (1: exact Langevin; 0: gradient descent).
        grad_clip: clamp each element of the field to ``[-grad_clip, grad_clip]`` (IGEBM) or ``None``.
        clamp: ``(lo, hi)`` to clamp the points to after every step (the data range), or ``None``.
    """

    def __init__(self, *, steps: int, step_size: float | Tensor, temperature: float = 1.0,
                 grad_clip: float | None = None, clamp: tuple[float, float] | None = None,
                 tol: float | None = None, record: Sequence[int] = ()):  # fmt: skip
        if temperature < 0 or (grad_clip is not None and not grad_clip > 0):
            raise ConfigError("Langevin needs temperature >= 0 and grad_clip > 0 (or none)")
        eta = step_size**2 / 2
        super().__init__(steps=steps, step_size=eta, tol=tol, noise=temperature, anneal=False, record=record)
        self.grad_clip, self.clamp = grad_clip, clamp

    def _direction(self, field, x, t, y, state, idx):
        d = field(x, t, y)
        return d if self.grad_clip is None else d.clamp(-self.grad_clip, self.grad_clip)

    def _project(self, x: Tensor) -> Tensor:
        return x if self.clamp is None else x.clamp(*self.clamp)


SAMPLERS.add("langevin", Langevin)
