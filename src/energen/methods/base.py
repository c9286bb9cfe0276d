r"""What a training method is: the one object that owns everything method-specific.

A method builds its model and its objective from a :class:`~energen.config.TrainConfig`, fills the config's
data-dependent defaults, migrates the configs of runs written before an option existed, chooses the run's default
sampler, and says how its chains start at a noise level and hold known entries. The training loop, :class:`Run`,
the samplers and the tasks ask the method; none of them branches on a method's name. The base class is the
behaviour of a time-free field method (EqM): chains start anywhere and ignore noise levels, known entries are held
at their values.

Adding a method means one new module with a subclass of :class:`Method`, and its registration line in
:mod:`energen.methods` (``docs/adding-a-method.md``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..data.info import DataInfo
from ..errors import ConfigError
from ..fields import Field, has_energy
from ..networks.base import default_model
from ..samplers.base import Constraint, NoiseSource, SamplerOutput
from ..samplers.settings import SamplerSettings

Start = tuple[Tensor, Field]
"""A chain's start and the field it follows."""


class Method:
    """A training method (its registry name and one-line summary), with the behaviour of a time-free field method.

    Class attributes state what the learned model is:

    - ``learns_velocity``: a time-dependent velocity (flow matching): no energy, no equilibrium, no product of
      experts, and chains start at a time of its path;
    - ``models_density``: :math:`e^{-E}` is the model's density (DRL/CDRL, contrastive divergence), so plots show it;
    - ``keeps_buffer``: the resume state holds a replay buffer that sampling may start from;
    - ``calibrates``: after training, the default sampler's budget is chosen on held-out data (EqM).

    Whether the model has a scalar energy is the model's own answer (:func:`energen.fields.has_energy`).
    """

    learns_velocity: ClassVar[bool] = False
    models_density: ClassVar[bool] = False
    keeps_buffer: ClassVar[bool] = False
    calibrates: ClassVar[bool] = False

    def __init__(self, name: str, summary: str):
        self.name, self.summary = name, summary

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # --- training -------------------------------------------------------------------------------------------
    def default_model(self, data_shape: tuple[int, ...]) -> str:
        """The network of ``--model auto``."""
        return default_model(data_shape)

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        """``cfg`` with this method's defaults for data of shape ``data_shape`` (its ``None`` fields) filled, and
        the combination checked."""
        return cfg

    def migrate(self, saved: dict) -> dict:
        """A saved ``config.json`` of this method, with the values runs written before an option existed were
        trained with (a new option's default may differ from what they did)."""
        return saved

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        raise NotImplementedError

    def param_groups(self, model: nn.Module, cfg: TrainConfig) -> list[dict]:
        """Optimiser parameter groups; each group's gradient norm is clipped separately."""
        return [{"params": list(model.parameters()), "lr": cfg.lr, "name": "model"}]

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo):
        """The per-sample loss: ``objective(model, x, y, generator) -> LossOutput``."""
        raise NotImplementedError

    # --- sampling -------------------------------------------------------------------------------------------
    def default_sampler(self, cfg: TrainConfig, info: DataInfo) -> SamplerSettings:
        """The sampler of a run before (or without) calibration."""
        raise NotImplementedError

    def guidance_rule(self, info: DataInfo) -> str:
        """The classifier-free guidance rule of a run on ``info`` (:class:`~energen.fields.GuidedField`): "all"."""
        return "all"

    def field_sampler(self, model: nn.Module, default: SamplerSettings, name: str | None = None) -> SamplerSettings:
        """Settings of the field sampler ``name`` on this method's model (``None``: the run's own, made able to
        start anywhere): the run's default, switched to ``name`` keeping its steps and step size."""
        return default.as_chain() if name is None else default.switch(name)

    def needs_noise_level(self, settings: SamplerSettings) -> bool:
        """Whether chains of ``settings`` start at a noise level (a time of a path, a level of a ladder) rather
        than descending from any point, as time-free methods do."""
        return False

    def energy(self, model: nn.Module, z: Tensor, y: Tensor | None, level: int) -> Tensor:
        """The scalar energy of normalised points ``z`` (shape (B, ...) -> (B,)); ``level``: a noise level."""
        if not has_energy(model):
            raise ConfigError(f"method {self.name!r} learns no scalar energy; train with --method eqm-e, drl, cdrl "
                              "or cd")  # fmt: skip
        if level != 0:
            raise ConfigError(f"method {self.name!r} has no noise levels; use level 0")
        return model.energy(z, None, y)

    def start(self, field: Field, x0: Tensor, noise_std: float | None) -> Start | None:
        """Where a field sampler starts from ``x0`` (data plus noise of std ``noise_std``, or a noise draw when
        ``None``), and the field it follows; ``None`` when there is nothing left to do. Time-free: as given."""
        return x0, field

    def hold(self, mask: Tensor, values: Tensor, x0: Tensor) -> tuple[Tensor, Constraint]:
        """In-painting: the start with the known entries (``mask`` 1) set, and the constraint applied after every
        step. Time-free: held at their values."""

        def constrain(x: Tensor, idx: Tensor, t: Tensor) -> Tensor:
            return torch.where(mask[idx], values[idx], x)

        return torch.where(mask, values, x0), constrain

    def walk_levels(self, model: nn.Module, settings: SamplerSettings, x0: Tensor, y: Tensor | None, *,
                    noise: NoiseSource, cfg: TrainConfig, cfg_scale: float, null_label: int, noise_std: float | None,
                    known: tuple[Tensor, Tensor] | None) -> SamplerOutput:  # fmt: skip
        """A sampler that walks the model's noise levels (``settings.walks_levels``)."""
        raise ConfigError(f"sampler {settings.name!r} walks the noise levels of a drl or cdrl run, not of "
                          f"{self.name!r}")  # fmt: skip


def fill(cfg: TrainConfig, **defaults) -> TrainConfig:
    """``cfg`` with its ``None`` fields among ``defaults`` set to the default."""
    return replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
