"""The registry of training methods: each is an objective plus how to build its model and its defaults.

Adding a method means adding one :class:`Method` here (and its objective in ``objectives.py``); the
training loop, checkpoints, samplers and CLI need no change.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .config import TrainConfig
from .interpolants import WEIGHTINGS, Constant
from .networks import MODELS, ExplicitEnergy, NetSpec
from .objectives import FieldMatching
from .registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    time_conditioned: bool
    explicit_energy: bool
    horizon_is_time: bool  # True: sampling integrates t from 0 to 1 (flow matching)

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        spec = NetSpec(tuple(data_shape), time_conditioned=self.time_conditioned, num_classes=num_classes)
        net = MODELS.get(cfg.model)(spec)
        return ExplicitEnergy(net, cfg.energy) if self.explicit_energy else net

    def objective(self, cfg: TrainConfig, num_classes: int) -> FieldMatching:
        if self.horizon_is_time:
            weighting = Constant(1.0)
        else:
            if cfg.c_a is None:
                raise ValueError("c_a is unresolved: pass the config through energen.training.resolve_config")
            kw = {"scale": cfg.c_scale} | ({"a": cfg.c_a} if cfg.c_schedule == "truncated" else {})
            weighting = WEIGHTINGS.get(cfg.c_schedule)(**kw)
        return FieldMatching(
            weighting=weighting, time_conditioned=self.time_conditioned, label_dropout=cfg.label_dropout,
            num_classes=num_classes, dispersive=cfg.dispersive,
        )  # fmt: skip


METHODS: Registry[Method] = Registry("method")
METHODS.add("eqm", Method("eqm", "Equilibrium Matching: a time-free equilibrium gradient field", False, False, False))
METHODS.add("eqm-e", Method("eqm-e", "Equilibrium Matching with an explicit scalar energy", False, True, False))
METHODS.add("fm", Method("fm", "flow matching baseline: a time-conditioned velocity field", True, False, True))
