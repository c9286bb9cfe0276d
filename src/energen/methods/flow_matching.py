r"""Flow matching, the baseline EqM is measured against: a time-conditioned velocity field.

The same regression as EqM (:class:`~energen.losses.eqm.FieldMatching`) with a constant :math:`c = 1`, uniform
time and the time passed to the network: :math:`v(x_t, t) \approx x - \varepsilon` on the straight path
:math:`x_t = t x + (1 - t) \varepsilon`. Sampling integrates :math:`t` from 0 to 1 (Euler: ``gd`` with
:math:`\eta = 1/K`); a chain of a partly noised input starts at the time of its noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..data.info import DataInfo
from ..fields import Field, TimeShift
from ..interpolants import Constant, default_truncation
from ..losses.eqm import FieldMatching
from ..networks.base import MODELS, NetSpec
from ..samplers.base import Constraint
from ..samplers.gradient_descent import GDSettings
from ..samplers.settings import SamplerSettings
from ..utils import expand_like
from .base import Method, Start, fill


class FlowMatching(Method):
    """``fm``: a velocity :math:`v(x, t)` integrated over :math:`t \\in [0, 1]`."""

    learns_velocity = True

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        """Uniform time, as the baseline it stands for (``c_a`` is unused: c is constant)."""
        return fill(cfg, c_a=default_truncation(data_shape), gamma_power=1.0, adam_beta1=0.9)

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return MODELS.get(cfg.model)(NetSpec(tuple(data_shape), time_conditioned=True, num_classes=num_classes))

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo) -> FieldMatching:
        return FieldMatching(weighting=Constant(1.0), time_conditioned=True, label_dropout=cfg.label_dropout,
                             num_classes=num_classes, dispersive=cfg.dispersive,
                             gamma_power=cfg.gamma_power or 1.0)  # fmt: skip

    def default_sampler(self, cfg: TrainConfig, info: DataInfo) -> GDSettings:
        return GDSettings(steps=100, step_size=0.01)  # Euler over t in [0, 1]

    def needs_noise_level(self, settings: SamplerSettings) -> bool:
        return True

    def start(self, field: Field, x0: Tensor, noise_std: float | None) -> Start | None:
        r"""Data plus noise of std :math:`\sigma` is, scaled by :math:`t_0 = 1/(1 + \sigma)`, a point of the path
        at :math:`t_0`: integrate from there (:class:`~energen.fields.TimeShift`); nothing to do at :math:`t_0 = 1`."""
        if noise_std is None:
            return x0, field
        t0 = 1.0 / (1.0 + noise_std)
        return None if t0 >= 1.0 else (t0 * x0, TimeShift(field, t0))

    def hold(self, mask: Tensor, values: Tensor, x0: Tensor) -> tuple[Tensor, Constraint]:
        """The known entries ride their own straight path :math:`t v + (1 - t) \\varepsilon` from the start."""
        eps = x0

        def constrain(x: Tensor, idx: Tensor, t: Tensor) -> Tensor:
            t = expand_like(t, x)
            return torch.where(mask[idx], t * values[idx] + (1 - t) * eps[idx], x)

        return x0, constrain
