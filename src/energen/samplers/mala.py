"""Metropolis-adjusted Langevin (MALA) on a scalar energy."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import EnergyField
from ..samplers.base import NoiseSource, SamplerOutput, _as_labels
from ..utils import expand_like, rms_flat


def _sq(v: Tensor) -> Tensor:
    return v.pow(2).flatten(1).sum(1)


def _uniform(draw: NoiseSource, idx: Tensor, like: Tensor) -> Tensor:
    """One uniform per sample in ``idx``, from one more normal draw of its own noise stream (its first element
    through the normal CDF), so that a chain depends on its own stream only."""
    return 0.5 * (1 + torch.erf(draw(idx).to(like).flatten(1)[:, 0] / math.sqrt(2)))


def _mala_accepts(x: Tensor, xp: Tensor, z: Tensor, lp: Tensor, lpp: Tensor, gp: Tensor, eta: float,
                  u: Tensor) -> Tensor:  # fmt: skip
    r"""The Metropolis test of the Langevin proposal :math:`x' = x + \eta \nabla\log\pi(x) + \sqrt{2\eta}\, z`:
    ``lp``, ``lpp`` are :math:`\log\pi` at :math:`x, x'`, ``gp`` its gradient at :math:`x'`, ``u`` the uniforms;
    returns the accepted mask."""
    return torch.log(u) < lpp - lp - _sq(x - xp - eta * gp) / (4 * eta) + _sq(z) / 2


class MetropolisLangevin:
    r"""Metropolis-adjusted Langevin (MALA) on a scalar energy: the Langevin proposal
    :math:`x' = x - \eta \nabla E(x) + \sqrt{2\eta}\, z`, accepted with probability

    .. math::  \min\Big(1, \exp\big(E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x)\big)\Big),
        \qquad q(b \mid a) \propto \exp\big(-\lVert b - a + \eta \nabla E(a) \rVert^2 / (4\eta)\big).

    Its chains leave :math:`p \propto e^{-E}` invariant at any step size, where :class:`Langevin`'s carry a
    discretisation bias that grows with the energy's sharpness (an energy trained by contrastive divergence on
    biased chains learns to correct for the bias, with wells where chains under-visit). Unlike the field samplers
    it needs the energy itself, ``energy(x, t, y) -> (B,)``: methods that learn a field have none. One energy
    and gradient evaluation a step, as :class:`Langevin`. The acceptance test draws its uniform from one more
    normal draw of the noise source (its first element through the normal CDF), so a chain depends on its own
    noise stream only.

    Args:
        steps: K.
        step_size: :math:`\eta`; each proposal's noise has std :math:`\sqrt{2\eta}`.
    """

    def __init__(self, *, steps: int, step_size: float):
        if steps < 1 or not step_size > 0:
            raise ConfigError("Metropolis-adjusted Langevin needs steps >= 1 and step_size > 0")
        self.steps, self.step_size = int(steps), float(step_size)
        self.acceptance = float("nan")  # mean acceptance rate of the last call

    @torch.no_grad()
    def __call__(self, energy, x0: Tensor, y: Tensor | None = None, *,
                 noise: NoiseSource | None = None) -> SamplerOutput:  # fmt: skip
        n, eta = x0.shape[0], self.step_size
        s = math.sqrt(2 * eta)
        y = _as_labels(y, n, x0.device)
        idx = torch.arange(n, device=x0.device)
        draw = noise if noise is not None else (lambda i: torch.randn((len(i), *x0.shape[1:]), device=x0.device))

        field = EnergyField(energy)
        x = x0.clone()
        e, f = field.energy_and_field(x, None, y)  # f = -grad E = grad log pi
        accepted = torch.zeros(n, device=x0.device)
        for _ in range(self.steps):
            z = draw(idx).to(x)
            xp = x + eta * f + s * z
            ep, fp = field.energy_and_field(xp, None, y)
            take = _mala_accepts(x, xp, z, -e, -ep, fp, eta, _uniform(draw, idx, x))
            keep = expand_like(take, x)
            x, e, f = torch.where(keep, xp, x), torch.where(take, ep, e), torch.where(keep, fp, f)
            accepted += take.to(accepted)
        self.acceptance = float(accepted.mean()) / self.steps
        return SamplerOutput(x=x, steps=torch.full((n,), self.steps, dtype=torch.long, device=x.device),
                             field_norm=rms_flat(f), nfe=self.steps + 1)  # fmt: skip
