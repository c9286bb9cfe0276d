r"""Diffusion recovery likelihood: DRL (Gao et al., 2021) and Cooperative DRL (CDRL, Zhu et al., 2024).

One energy network, conditioned on the noise level, models every level :math:`x_0, \dots, x_{T-1}` of a
variance-preserving diffusion :math:`x_t = \sqrt{\bar a_t}\, x + \bar\sigma_t \varepsilon`. Level ``i`` is
learned by *recovery likelihood*: the conditional density of :math:`\tilde y = \alpha_{i+1} x_i` given the
noisier :math:`x_{i+1}`,

.. math::  \log p(\tilde y \mid x_{i+1}) = h(\tilde y, i) / s_i^2 - \| \tilde y - x_{i+1} \|^2 / (2\sigma_{i+1}^2) + C,

is close to unimodal, so a short Langevin chain samples it. The network output :math:`h = s_i^2 f` is the
log-density scaled by the level's Langevin step :math:`s_i^2` (both reference codes; their "Appendix A.2"):
the drift of a Langevin step then has coefficient 1/2 at every level. The top level ``T-1`` is an
ordinary marginal EBM (no quadratic term, :math:`\alpha = 1`), started from :math:`x_T \approx N(0, I)`.

CDRL adds an *initializer* :math:`\mu_\phi(x_{i+1}) = x_{i+1} + \mathrm{net}(x_{i+1})` (zero-initialised
residual, so it starts as DRL) that proposes each chain's start, and is trained to regress onto the
chain's end (stop-gradient, the same start noise): it learns to absorb the MCMC displacement. CDRL also
pairs :math:`x_i` and :math:`x_{i+1}` through one shared :math:`\varepsilon` (noise-variance reduction;
both marginals stay exact) and uses the cosine-logSNR schedule. Where this module departs from the reference
code it says so; defaults and their reasons: ``docs/methods/recovery.md``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..fields import EnergyField
from ..losses.base import LossOutput, drop_labels
from ..networks.recovery import RecoveryModel
from ..samplers.langevin import Langevin
from ..utils import expand_like, rms_flat, sum_flat

MAX_CHAIN_MOVE = 10.0  # RMS displacement of a chain, in data standard deviations, beyond which it has blown up


class RecoveryLikelihood:
    r"""The DRL / CDRL training loss, per sample.

    Each sample draws its own recovery level i uniformly; the positive is :math:`\tilde y^+ = \alpha x_i`
    from data, the negative :math:`\tilde y^-` the end of K Langevin steps on the conditional energy from the
    proposal. Per sample: :math:`w_i\,[h(\tilde y^-) - h(\tilde y^+)]` (raise h on data, lower it on samples),
    plus, for CDRL, the initializer's :math:`\|\mathrm{sg}(\tilde y^-) - \tilde y^0\|^2` (summed over
    dimensions, as the reference). The two terms touch disjoint parameters, so one backward trains both.

    Args:
        langevin_steps: K per level during training.
        pairing: CDRL's noise-variance reduction: :math:`x_i, x_{i+1}` share one :math:`\varepsilon`
            (otherwise :math:`x_{i+1} = \alpha x_i + \sigma \varepsilon'`, as DRL).
        label_dropout, num_classes: classifier-free guidance training (label ``num_classes`` is "none").
    """

    def __init__(self, *, langevin_steps: int, pairing: bool, label_dropout: float = 0.1, num_classes: int = 0):
        self.langevin_steps, self.pairing = int(langevin_steps), bool(pairing)
        self.label_dropout, self.num_classes = label_dropout, num_classes

    def __call__(self, model: RecoveryModel, x: Tensor, y: Tensor | None, generator: torch.Generator) -> LossOutput:
        lv = model.levels
        n, dev = x.shape[0], x.device
        x = x * model.data_scale

        def randn() -> Tensor:
            return torch.randn(x.shape, generator=generator).to(dev)

        i = torch.randint(0, lv.levels, (n,), generator=generator).to(dev)
        eps = randn()
        x_i = expand_like(lv.abar[i].sqrt(), x) * x + expand_like(lv.sigma_bar[i], x) * eps
        if self.pairing:
            x_next = expand_like(lv.abar[i + 1].sqrt(), x) * x + expand_like(lv.sigma_bar[i + 1], x) * eps
        else:
            x_next = expand_like(lv.alpha_true[i], x) * x_i + expand_like(lv.sigma[i], x) * randn()
        y = drop_labels(y, self.label_dropout, self.num_classes, generator)
        y_pos = expand_like(lv.alpha[i], x) * x_i
        y0 = model.propose(x_next, i, y)
        if model.initializer is not None:
            y0 = y0 + expand_like(lv.init_std[i], x) * randn()
        field = EnergyField(lambda v, _t, c: model.conditional_energy(v, x_next, i, c))
        chain = Langevin(steps=self.langevin_steps, step_size=lv.eta[i])
        y_neg = chain(
            field, y0.detach(), y, noise=lambda idx: torch.randn((len(idx), *x.shape[1:]), generator=generator).to(dev)
        ).x
        h_pos, h_neg = model.h(torch.cat([y_pos, y_neg]), torch.cat([i, i]),
                               None if y is None else torch.cat([y, y])).float().chunk(2)  # fmt: skip
        per_sample = lv.weight[i] * (h_neg - h_pos)
        stats = {"h_gap": (h_pos - h_neg).mean().item(),
                 "langevin_move": rms_flat(y_neg - y0.detach()).mean().item() / model.data_scale}  # fmt: skip
        if model.initializer is not None:
            init_loss = sum_flat((y_neg.detach() - y0) ** 2)
            per_sample = per_sample + init_loss
            stats["init_loss"] = init_loss.mean().item()
        problem = None
        if not stats["langevin_move"] <= MAX_CHAIN_MOVE:  # also catches NaN
            problem = (f"the Langevin chains blew up (RMS move {stats['langevin_move']:.3g} data standard "
                       "deviations); lower --langevin-b2 or --lr")  # fmt: skip
        return LossOutput(per_sample=per_sample, stats=stats, problem=problem)
