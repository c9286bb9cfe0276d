"""The model of DRL/CDRL: a level-conditioned energy network, CDRL's initializer and the levels."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..fields import EnergyField
from ..noise_levels import NoiseLevels
from ..utils import expand_like, sum_flat


class RecoveryModel(nn.Module):
    r"""The energy network :math:`h(\tilde y, i, y)` of every level, and CDRL's initializer (or ``None``).

    ``forward(x, t, y)`` is the field protocol: :math:`\nabla_x \log p_0(x) = -\nabla E_0`, the level-0 field,
    so the shared samplers (gd, nag, ode, langevin, smc) run on a recovery-likelihood model too; ``energy(x)``
    (level 0 unless given) is the energy whose negative gradient that field is.
    """

    has_energy = True  # fields.has_energy: ``energy(x, None, y)`` is the level-0 energy of ``forward``

    def __init__(self, ebm: nn.Module, initializer: nn.Module | None, levels: NoiseLevels, data_scale: float = 1.0):
        super().__init__()
        self.ebm, self.initializer, self.levels = ebm, initializer, levels
        self.data_scale = float(data_scale)  # the diffusion runs on data_scale * (normalised data)

    def h(self, y_tilde: Tensor, i: Tensor, y: Tensor | None = None) -> Tensor:
        """The network output, shape (B,), for scaled points ``y_tilde`` of levels ``i`` (shape (B,))."""
        return self.ebm(y_tilde, self.levels.t_ebm[i], y)

    def energy(self, x: Tensor, i: Tensor | int | None = 0, y: Tensor | None = None) -> Tensor:
        r"""The marginal energy :math:`E_i(x) = -f(\alpha_{i+1} x, i) = -h / s_i^2` of points x of level i.

        ``x`` is in normalised data units (the model scales it by ``data_scale``)."""
        i = self._levels(0 if i is None else i, x)
        lv = self.levels
        return -self.h(expand_like(lv.alpha[i], x) * x * self.data_scale, i, y) / lv.step[i] ** 2

    def conditional_energy(self, y_tilde: Tensor, x_next: Tensor, i: Tensor, y: Tensor | None = None,
                           h: Callable | None = None) -> Tensor:  # fmt: skip
        r""":math:`-h(\tilde y, i)/s_i^2 + \|\tilde y - x_{i+1}\|^2 / (2\sigma_{i+1}^2)`; no quadratic at the top.

        ``h`` replaces :meth:`h` (e.g. a guided combination); the quadratic term is never guided.
        """
        lv = self.levels
        quad = sum_flat((y_tilde - x_next) ** 2) / (2 * lv.sigma[i] ** 2)
        quad = torch.where(lv.is_top(i), torch.zeros_like(quad), quad)
        return -(h or self.h)(y_tilde, i, y) / lv.step[i] ** 2 + quad

    def propose(self, x_next: Tensor, i: Tensor, y: Tensor | None = None) -> Tensor:
        """The chain's start in ``y_tilde`` units, before noise: the initializer's mean (CDRL) or x_{i+1} (DRL)."""
        if self.initializer is None:
            return x_next
        return self.initializer(x_next, self.levels.t_init[i], y)

    def _levels(self, i: Tensor | int, x: Tensor) -> Tensor:
        if isinstance(i, int):
            return torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        return i

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return EnergyField(lambda v, _t, c: self.energy(v, 0, c))(x, t, y)
