"""ODE integration of a field with torchdiffeq."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import Field
from ..samplers.base import Constraint, NoiseSource, SamplerOutput, _as_labels
from ..samplers.registry import SAMPLERS
from ..samplers.settings import SamplerSettings
from ..utils import rms_flat

ODE_METHODS = ("euler", "midpoint", "heun2", "rk4", "dopri5", "bosh3", "adaptive_heun")


class ODESolver:
    r"""Integrate :math:`dx/ds = f(x, \min(s, 1))` for :math:`s \in [0, T]` with torchdiffeq.

    For flow matching ``T = 1`` integrates the velocity from noise to data. For EqM the field is a
    gradient and ``T`` plays the role of the total step budget :math:`\eta K` of gradient descent.

    Args:
        method: a torchdiffeq method; fixed-grid (``euler``, ``midpoint``, ``heun2``, ``rk4``) use ``steps``
            steps, adaptive ones (``dopri5``, ``bosh3``, ``adaptive_heun``) use ``rtol``/``atol``.
        steps: number of grid steps for fixed-grid methods.
        horizon: the integration length T.
    """

    def __init__(self, *, method: str = "heun2", steps: int = 50, horizon: float = 1.0, rtol: float = 1e-4,
                 atol: float = 1e-4):  # fmt: skip
        if method not in ODE_METHODS:
            raise ConfigError(f"unknown ODE method {method!r}; choose one of: {', '.join(ODE_METHODS)}")
        if steps < 1 or not horizon > 0:
            raise ConfigError("ODE solver needs steps >= 1 and horizon > 0")
        self.method, self.steps, self.horizon, self.rtol, self.atol = method, int(steps), float(horizon), rtol, atol

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        """Integrate from x0; deterministic, so ``noise`` is unused."""
        from torchdiffeq import odeint

        if constrain is not None:
            raise ConfigError("constraints (in-painting) need a step sampler: gd, nag or langevin, not ode")

        n = x0.shape[0]
        y = _as_labels(y, n, x0.device)
        count = [0]

        def rhs(s: Tensor, x: Tensor) -> Tensor:
            count[0] += 1
            return field(x, torch.full((n,), float(min(s.item(), 1.0)), device=x.device), y)

        ts = torch.tensor([0.0, self.horizon], device=x0.device, dtype=x0.dtype)
        opts = {"step_size": self.horizon / self.steps} if self.method in ("euler", "midpoint", "heun2", "rk4") else {}
        xs = odeint(rhs, x0, ts, method=self.method, rtol=self.rtol, atol=self.atol, options=opts)
        x = xs[-1]
        norm = rms_flat(field(x, torch.ones(n, device=x.device), y))
        steps = torch.full((n,), count[0], dtype=torch.long, device=x.device)
        return SamplerOutput(x=x, steps=steps, field_norm=norm, nfe=count[0])


@SAMPLERS.register("ode")
@dataclass(frozen=True)
class ODESettings(SamplerSettings):
    """``ode``: integrate for the time eta K (K grid steps of eta for fixed-grid methods)."""

    name: ClassVar[str] = "ode"
    step_size: float = 0.01
    ode_method: str = "heun2"

    def __post_init__(self):
        super().__post_init__()
        if self.ode_method not in ODE_METHODS:
            raise ConfigError(f"unknown ODE method {self.ode_method!r}; choose one of: {', '.join(ODE_METHODS)}")

    def build(self, record=()) -> ODESolver:
        return ODESolver(method=self.ode_method, steps=self.steps, horizon=self.steps * self.step_size)
