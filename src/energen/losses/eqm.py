r"""Training objectives. Each returns per-sample losses; the training loop reduces them.

:class:`FieldMatching` covers three methods with one body, varying only the weighting and whether the
network sees :math:`\gamma`:

- EqM: :math:`\| f_\theta(x_\gamma) - (x - \varepsilon)\, c(\gamma) \|^2`, network blind to :math:`\gamma`;
- EqM-E: the same, with :math:`f_\theta = -\nabla E_\theta` (the model is an
  :class:`~energen.networks.ExplicitEnergy`, trained by double backward);
- flow matching: :math:`\| v_\theta(x_\gamma, \gamma) - (x - \varepsilon) \|^2` (``c = 1``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..interpolants import LinearPath, Weighting
from ..losses.base import LossOutput, drop_labels, unwrap
from ..utils import expand_like, mean_flat


def dispersive_loss(z: Tensor) -> Tensor:
    r"""InfoNCE-L2 dispersive loss (Wang & He, 2025) on features z of shape (B, ...):
    :math:`\log \operatorname{mean}_{i,j} \exp(-\|z_i - z_j\|^2 / D)`, over all pairs including i = j.
    A scalar: it is a property of the batch, not of one sample."""
    z = z.reshape(z.shape[0], -1)
    d = torch.cdist(z, z).pow(2) / z.shape[1]
    return torch.logsumexp(-d.reshape(-1), dim=0) - torch.log(torch.tensor(float(d.numel()), device=z.device))


class FieldMatching:
    r"""Regress the model's field at :math:`x_\gamma` onto :math:`(x - \varepsilon)\, c(\gamma)`.

    Args:
        weighting: :math:`c(\gamma)`.
        time_conditioned: pass :math:`\gamma` to the model (flow matching) or not (EqM).
        label_dropout: probability of replacing a label by the null label (classifier-free guidance).
        num_classes: number of classes; the null label is ``num_classes``.
        dispersive: weight of the dispersive loss on the model's ``features`` (0 disables it). The
            batch-level term is added to every sample's loss, so the mean is the usual total.
        gamma_power: :math:`\gamma = u^{1/p}` with :math:`u` uniform, i.e. density :math:`p\gamma^{p-1}`
            (``Beta(p, 1)``); ``p > 1`` spends more of the training signal near the data.
    """

    def __init__(self, *, weighting: Weighting, time_conditioned: bool, label_dropout: float = 0.1,
                 num_classes: int = 0, dispersive: float = 0.0, gamma_power: float = 1.0):  # fmt: skip
        self.path = LinearPath()
        self.weighting, self.time_conditioned = weighting, time_conditioned
        self.label_dropout, self.num_classes, self.dispersive = label_dropout, num_classes, dispersive
        self.gamma_power = gamma_power

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor | None, generator: torch.Generator) -> LossOutput:
        """x: shape (B, ...) normalised data; y: shape (B,) labels or None. Draws the noise, gamma and the label
        dropout from ``generator``, then :meth:`losses_at`."""
        n = x.shape[0]
        eps = torch.randn(x.shape, generator=generator).to(x.device)
        gamma = torch.rand(n, generator=generator).pow(1 / self.gamma_power).to(x.device)
        y = drop_labels(y, self.label_dropout, self.num_classes, generator)
        return self.losses_at(model, x, y, eps, gamma)

    def losses_at(self, model: nn.Module, x: Tensor, y: Tensor | None, eps: Tensor, gamma: Tensor) -> LossOutput:
        """The per-sample losses at given noise ``eps`` (x's shape) and ``gamma`` (shape (B,)), labels as given."""
        ps = self.path.sample(x, eps, gamma)
        target = ps.velocity * expand_like(self.weighting(gamma), x)
        pred = model(ps.x_t, gamma if self.time_conditioned else None, y)
        per_sample = mean_flat((pred.float() - target) ** 2)
        stats = {"mse": per_sample.mean().item()}
        if self.dispersive > 0:
            disp = dispersive_loss(unwrap(model).features.float())
            per_sample = per_sample + self.dispersive * disp
            stats["dispersive"] = disp.item()
        return LossOutput(per_sample=per_sample, stats=stats)
