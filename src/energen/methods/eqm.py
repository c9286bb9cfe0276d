r"""Equilibrium Matching (EqM) and EqM-E: a time-free equilibrium gradient field, or an explicit scalar energy
whose negative gradient is that field.

The model regresses :math:`f(x_\gamma) \approx (\varepsilon - x)\, c(\gamma)` at :math:`x_\gamma = \gamma x + (1 -
\gamma) \varepsilon` (:class:`~energen.losses.eqm.FieldMatching`), with :math:`\gamma` drawn with density
:math:`p\gamma^{p-1}` (``--gamma-power``) and the truncated decay :math:`c(\gamma)` (``--c-schedule``). Samples
descend the learned landscape by gradient descent (``gd``, or ``nag``) from noise; the step budget
:math:`\eta K` is calibrated on held-out data after training.
"""

from __future__ import annotations

from torch import nn

from ..config import TrainConfig
from ..data.info import DataInfo
from ..errors import ConfigError
from ..interpolants import WEIGHTINGS, default_truncation
from ..losses.eqm import FieldMatching
from ..networks.base import MODELS, NetSpec
from ..networks.energy import ExplicitEnergy
from ..samplers.gradient_descent import GDSettings
from .base import Method, fill


class EquilibriumMatching(Method):
    """``eqm`` (``explicit_energy=False``) and ``eqm-e``: EqM-E's network outputs a scalar energy (``--energy``)
    whose negative gradient is the field, trained by double backward."""

    calibrates = True

    def __init__(self, name: str, summary: str, *, explicit_energy: bool = False):
        super().__init__(name, summary)
        self.explicit_energy = explicit_energy

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        """gamma is drawn with density 2 gamma unless told otherwise: on the three 2-D toys it lowers sliced W1 by
        about 30% against uniform gamma, and on digits FD-digits from 0.90 to 0.87 (docs/methods/eqm.md)."""
        if cfg.compile and self.explicit_energy:
            raise ConfigError("--compile cannot train through a gradient of the energy (eqm-e): torch.compile has "
                              "no double backward")  # fmt: skip
        return fill(cfg, c_a=default_truncation(data_shape), gamma_power=2.0, adam_beta1=0.9)

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        net = MODELS.get(cfg.model)(NetSpec(tuple(data_shape), time_conditioned=False, num_classes=num_classes))
        return ExplicitEnergy(net, cfg.energy) if self.explicit_energy else net

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo) -> FieldMatching:
        if cfg.c_a is None or cfg.gamma_power is None:
            raise ValueError("c_a/gamma_power unresolved: pass the config through energen.training.resolve_config")
        kw = {"scale": cfg.c_scale} | ({"a": cfg.c_a} if cfg.c_schedule == "truncated" else {})
        return FieldMatching(
            weighting=WEIGHTINGS.get(cfg.c_schedule)(**kw), time_conditioned=False, label_dropout=cfg.label_dropout,
            num_classes=num_classes, dispersive=cfg.dispersive, gamma_power=cfg.gamma_power,
        )  # fmt: skip

    def default_sampler(self, cfg: TrainConfig, info: DataInfo) -> GDSettings:
        return GDSettings(steps=100, step_size=0.005)

    def guidance_rule(self, info: DataInfo) -> str:
        """On VAE latents, the reference's rule (channels 0-2, only for w > 1), so that converted checkpoints
        sample as the reference does; elsewhere every entry."""
        return "reference" if info.decoder is not None else "all"
