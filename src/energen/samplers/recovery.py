"""The recovery sampler of DRL/CDRL: Langevin through every noise level, then one Tweedie step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import EnergyField
from ..networks.recovery import RecoveryModel
from ..samplers.base import NoiseSource, SamplerOutput
from ..samplers.langevin import Langevin
from ..samplers.registry import SAMPLERS
from ..samplers.settings import SamplerSettings
from ..utils import expand_like, rms_flat


class AncestralSampler:
    r"""Sampling from pure noise through all levels (Algorithm 2 of CDRL), then one Tweedie step.

    For ``i = T-1 .. 0``: propose from :math:`x_{i+1}` (initializer mean + its noise, or :math:`x_{i+1}` for
    DRL), run K Langevin steps on the conditional energy, divide by :math:`\alpha_{i+1}`. Finally
    :math:`\hat x = (x_0 + \bar\sigma_0^2 \nabla \log p_0(x_0)) / \sqrt{\bar a_0}` (the reference code over-scales
    this score by 2, harmless at :math:`\bar\sigma_0^2 = 5.5\cdot10^{-5}`; we do not copy that).

    Each level's Langevin step is :math:`\eta_i = s_i^2 / 2` (:attr:`NoiseLevels.eta`). Fewer
    steps than in training keep the Langevin "time" :math:`K \eta` constant: :math:`\eta_K = \eta\, K_{train}/K`
    (the paper's noise std :math:`s \propto 1/\sqrt{K}`). Classifier-free guidance acts on both networks with
    one weight w (ours: 1 = plain conditional, i.e. the paper's :math:`1 + w`):
    :math:`h_w = h_\varnothing + w (h_c - h_\varnothing)` and
    :math:`\mu_w = \mu_\varnothing + w (\mu_c - \mu_\varnothing)`.

    Two uses beyond generation: ``start_level`` starts the ladder from a noisy input :math:`x_t` of level t
    (denoising, translation), and ``known = (mask, values)`` holds the entries where ``mask`` is 1 at the
    observed values, noised to each level as it is reached (in-painting, as RePaint's single pass).
    """

    def __init__(self, model: RecoveryModel, *, langevin_steps: int, train_steps: int, temperature: float = 1.0,
                 cfg_scale: float = 1.0, null_label: int | None = None, denoise: bool = True):  # fmt: skip
        self.model, self.k, self.k_train = model, int(langevin_steps), int(train_steps)
        self.temperature, self.w, self.null, self.denoise = float(temperature), float(cfg_scale), null_label, denoise

    def _guided(self, fn, y: Tensor | None):
        if y is None or self.w == 1.0:
            return fn
        null = torch.full_like(y, self.null)

        def g(v: Tensor, i: Tensor, _y=None) -> Tensor:
            c, u = fn(torch.cat([v, v]), torch.cat([i, i]), torch.cat([y, null])).chunk(2)
            return u + self.w * (c - u)

        return g

    @torch.no_grad()
    def __call__(self, x_top: Tensor, y: Tensor | None = None, *, noise: NoiseSource, start_level: int | None = None,
                 known: tuple[Tensor, Tensor] | None = None) -> SamplerOutput:  # fmt: skip
        r"""Run the ladder down to the data.

        Args:
            x_top: shape (B, ...), the points of level ``start_level`` (default T: standard normal noise), in
                the model's units (normalised data times ``data_scale``, scaled by :math:`\sqrt{\bar a_t}`).
            noise: ``noise(idx)`` draws the chains' noise per sample.
            start_level: t in 1..T; the chains run levels t-1 .. 0.
            known: ``(mask, values)`` of x's shape, values in normalised data units.
        """
        m, lv = self.model, self.model.levels
        n = x_top.shape[0]
        start = lv.levels if start_level is None else int(start_level)
        if not 1 <= start <= lv.levels:
            raise ValueError(f"start_level must be in 1..{lv.levels}, got {start}")
        idx = torch.arange(n, device=x_top.device)
        h, propose = self._guided(m.h, y), self._guided(m.propose, y)
        x, nfe = x_top, 0
        for level in reversed(range(start)):
            i = torch.full((n,), level, dtype=torch.long, device=x.device)
            y0 = propose(x, i, y)
            if m.initializer is not None:
                y0 = y0 + lv.init_std[level] * noise(idx).to(x)
            x_next = x
            field = EnergyField(lambda v, _t, c, x_next=x_next, i=i: m.conditional_energy(v, x_next, i, c, h=h))
            eta = float(lv.eta[level]) * self.k_train / self.k
            out = Langevin(steps=self.k, step_size=eta, temperature=self.temperature)(field, y0, y, noise=noise)
            nfe += out.nfe
            x = out.x / lv.alpha[level]
            if known is not None:  # the observed entries, noised to this level
                seen = lv.abar[level].sqrt() * m.data_scale * known[1] + lv.sigma_bar[level] * noise(idx).to(x)
                x = torch.where(known[0].bool(), seen, x)
        i0 = torch.zeros(n, dtype=torch.long, device=x.device)
        score = EnergyField(lambda v, _t, c: -h(expand_like(lv.alpha[i0], v) * v, i0, c) / lv.step[0] ** 2)(x, None, y)
        if self.denoise:
            x = (x + lv.sigma_bar[0] ** 2 * score) / lv.abar[0].sqrt()
        x = x / m.data_scale
        if known is not None:
            x = torch.where(known[0].bool(), known[1], x)
        steps = torch.full((n,), nfe, dtype=torch.long, device=x.device)
        return SamplerOutput(x=x, steps=steps, field_norm=rms_flat(score), nfe=nfe)


@SAMPLERS.register("recovery")
@dataclass(frozen=True)
class RecoverySettings(SamplerSettings):
    """``recovery`` (drl, cdrl): K Langevin steps per noise level at temperature T. Its step sizes are the
    levels' own (from the run's b^2), so it takes no step size."""

    name: ClassVar[str] = "recovery"
    walks_levels: ClassVar[bool] = True
    keeps_time: ClassVar[bool] = False  # each level's eta follows K itself (K eta is kept per level)
    temperature: float = 1.0

    def build(self, record=()):
        raise ConfigError("sampler 'recovery' runs through the noise levels of a drl/cdrl run only")
