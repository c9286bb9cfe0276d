"""Sequential Monte Carlo (annealed importance sampling with resampling) to exp(-E)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import Field, energy_source
from ..samplers.base import Constraint, NoiseSource, SamplerOutput, _as_labels
from ..samplers.mala import _mala_accepts, _sq, _uniform
from ..samplers.registry import SAMPLERS
from ..samplers.settings import SamplerSettings
from ..utils import expand_like, rms_flat


class SequentialMonteCarlo:
    r"""Sequential Monte Carlo from a broad start distribution :math:`q` to :math:`p \propto e^{-E}` (annealed
    importance sampling with resampling): the batch is a population of particles on the geometric path

    .. math::  \pi_b(x) \propto q(x)^{1-b}\, e^{-b E(x)}, \qquad b_k = k / K.

    Each step reweights the particles by :math:`\pi_{b_{k+1}} / \pi_{b_k}` (the factor
    :math:`(e^{-E(x)} / q(x))^{1/K}`), resamples them (systematic resampling, within each class) when the effective
    sample size falls under half the population, and moves each by one Metropolis-adjusted Langevin step that
    leaves :math:`\pi_{b_{k+1}}` invariant; a last resampling makes the output unweighted. Where Langevin chains
    from noise settle in whichever mode is nearest and take a mode's basin for its weight, SMC weighs the modes by
    their mass under :math:`e^{-E}`: it samples the learned density itself, the better the larger the batch and
    the longer the path. The particles of a batch share their weights, so unlike the other samplers a sample
    depends on the others in its batch (``noise`` still fixes every draw).

    ``q`` is :math:`\mathcal N(0, I)`, the standard normal draw the samplers start from, or, with
    ``box = (lo, hi)``, uniform on the box (the start mapped through the normal CDF), and then the density is
    :math:`e^{-E}` on the box only: moves that leave it are rejected. An energy trained by contrastive divergence
    is trained only where its chains go; far from the data it may fall without bound (an improper density), and
    a uniform start reaches every part of the data's range, where a normal one leaves its corners to a few
    heavily weighted particles (checkerboard: its outer squares weigh up to 36 times its inner ones under
    :math:`q^{-1}`).

    It needs the energy: :func:`~energen.fields.energy_source` gives an energy model's own, and the line integral
    of any other field.

    Args:
        steps: K, the path's steps (one energy and gradient evaluation each, plus one).
        step_size: :math:`\eta` of each Metropolis-adjusted Langevin move (proposal noise std :math:`\sqrt{2\eta}`).
        box: ``(lo, hi)``, the support and uniform start, or ``None`` (all of space, a normal start).
    """

    def __init__(self, *, steps: int, step_size: float, box: tuple[float, float] | None = None,
                 record: Sequence[int] = ()):  # fmt: skip
        if steps < 1 or not step_size > 0 or (box is not None and not box[0] < box[1]):
            raise ConfigError("SMC needs steps >= 1, step_size > 0 and a box with lo < hi (or none)")
        self.steps, self.step_size, self.record = int(steps), float(step_size), set(int(k) for k in record)
        self.box = None if box is None else (float(box[0]), float(box[1]))
        self.acceptance = float("nan")  # mean Metropolis acceptance of the last call
        self.resamplings = 0  # resampling events of the last call
        self.ess_fraction = 0.5  # resample when the effective sample size falls under this fraction of a group

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        if constrain is not None:
            raise ConfigError("smc samples all of x from noise; in-painting needs a step sampler: gd, nag or langevin")
        n, eta = x0.shape[0], self.step_size
        s = math.sqrt(2 * eta)
        y = _as_labels(y, n, x0.device)
        idx = torch.arange(n, device=x0.device)
        draw = noise if noise is not None else (lambda i: torch.randn((len(i), *x0.shape[1:]), device=x0.device))
        groups = [idx] if y is None else [idx[y == c] for c in torch.unique(y)]
        target = energy_source(field)

        def resample(state: list[Tensor], logw: Tensor, force: bool) -> None:
            for grp in groups:
                w = torch.softmax(logw[grp], 0)
                if not force and 1 / w.pow(2).sum() >= self.ess_fraction * len(grp):
                    continue
                u = (_uniform(draw, grp[:1], x0) + torch.arange(len(grp), device=x0.device)) / len(grp)
                anc = grp[torch.searchsorted(torch.cumsum(w, 0), u).clamp(max=len(grp) - 1)]
                for v in state:
                    v[grp] = v[anc]
                logw[grp] = 0.0
                self.resamplings += 1

        gauss = self.box is None  # q = N(0, I); else uniform on the box, constant

        def log_q(x: Tensor) -> Tensor:
            return -_sq(x) / 2 if gauss else torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)

        def log_pi(b: float, x: Tensor, e: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:  # log pi_b, its gradient
            return -b * e + (1 - b) * log_q(x), (b * f - (1 - b) * x) if gauss else b * f

        def outside(x: Tensor) -> Tensor:
            if gauss:
                return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            return ((x < self.box[0]) | (x > self.box[1])).flatten(1).any(1)

        lo, hi = self.box or (0.0, 1.0)
        x = x0.clone() if gauss else lo + (hi - lo) * 0.5 * (1 + torch.erf(x0 / math.sqrt(2)))  # uniform: normal CDF
        e, f = target.energy_and_field(x, None, y)  # f = -grad E
        logw = torch.zeros(n, device=x0.device, dtype=x0.dtype)
        snapshots, accepted, self.resamplings = {}, torch.zeros(n, device=x0.device), 0
        for k in range(self.steps):
            if 0 in self.record and k == 0:
                snapshots[0] = x.clone()
            b0, b1 = k / self.steps, (k + 1) / self.steps
            logw -= (b1 - b0) * (e + log_q(x))
            resample([x, e, f], logw, force=False)
            lp, g = log_pi(b1, x, e, f)
            z = draw(idx).to(x)
            xp = x + eta * g + s * z
            ep, fp = target.energy_and_field(xp, None, y)
            lpp, gp = log_pi(b1, xp, ep, fp)
            take = _mala_accepts(x, xp, z, lp, lpp, gp, eta, _uniform(draw, idx, x)) & ~outside(xp)
            keep = expand_like(take, x)
            x, e, f = torch.where(keep, xp, x), torch.where(take, ep, e), torch.where(keep, fp, f)
            accepted += take.to(accepted)
            if k + 1 in self.record:
                snapshots[k + 1] = x.clone()
        resample([x, e, f], logw, force=True)
        self.acceptance = float(accepted.mean()) / self.steps
        return SamplerOutput(x=x, steps=torch.full((n,), self.steps, dtype=torch.long, device=x.device),
                             field_norm=rms_flat(f), nfe=self.steps + 1,
                             snapshots=snapshots)  # fmt: skip


@SAMPLERS.register("smc")
@dataclass(frozen=True)
class SMCSettings(SamplerSettings):
    """``smc``: a path of K Metropolis-adjusted Langevin moves of eta; ``box`` (the data's, from the run) is the
    support and the uniform start."""

    name: ClassVar[str] = "smc"
    starts_from_noise: ClassVar[bool] = True
    needs_energy: ClassVar[bool] = True
    keeps_time: ClassVar[bool] = False
    step_size: float = 0.002
    box: tuple[float, float] | None = None

    def build(self, record=()) -> SequentialMonteCarlo:
        return SequentialMonteCarlo(steps=self.steps, step_size=self.step_size, box=self.box, record=record)

    def as_chain(self) -> SamplerSettings:
        return self.switch("langevin")
