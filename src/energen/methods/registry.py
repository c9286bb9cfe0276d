"""The registry of training methods: each is an objective plus how to build its model and its defaults.

Adding a method means adding one :class:`Method` here (and its objective in ``objectives.py``); the
training loop, checkpoints, samplers and CLI need no change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import nn

from ..config import TrainConfig
from ..data.info import DataInfo
from ..errors import ConfigError
from ..interpolants import WEIGHTINGS, Constant, default_truncation
from ..losses.contrastive_divergence import ContrastiveDivergence, check_mh
from ..losses.eqm import FieldMatching
from ..losses.recovery_likelihood import RecoveryLikelihood
from ..losses.replay_buffer import ReplayBuffer
from ..networks.base import MODELS, NetSpec, default_model
from ..networks.energy import ExplicitEnergy, ScalarEnergy, spectral_normalise
from ..networks.initializer import Initializer
from ..networks.recovery import RecoveryModel
from ..noise_levels import NoiseLevels
from ..registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    time_conditioned: bool
    explicit_energy: bool
    horizon_is_time: bool  # True: sampling integrates t from 0 to 1 (flow matching)
    native_sampler: str = "gd"  # the default sampler ("recovery": through the noise levels)

    def default_model(self, data_shape: tuple[int, ...]) -> str:
        """The network of ``--model auto``."""
        return default_model(data_shape)

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        """Fill this method's data-dependent defaults (``None`` fields) in ``cfg``.

        EqM draws gamma with density 2 gamma unless told otherwise: on the three 2-D toys it lowers sliced W1
        by about 30% against uniform gamma (README, Results), and on digits FD-digits from 0.90 to 0.87; flow
        matching keeps the uniform gamma of the baseline it stands for.
        """
        gamma_power = 1.0 if self.horizon_is_time else 2.0
        return _fill(cfg, c_a=default_truncation(data_shape), gamma_power=gamma_power, adam_beta1=0.9)

    def param_groups(self, model: nn.Module, cfg: TrainConfig) -> list[dict]:
        """Optimiser parameter groups; each group's gradient norm is clipped separately."""
        return [{"params": list(model.parameters()), "lr": cfg.lr, "name": "model"}]

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        spec = NetSpec(tuple(data_shape), time_conditioned=self.time_conditioned, num_classes=num_classes)
        net = MODELS.get(cfg.model)(spec)
        return ExplicitEnergy(net, cfg.energy) if self.explicit_energy else net

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo) -> FieldMatching:
        if cfg.c_a is None or cfg.gamma_power is None:
            raise ValueError("c_a/gamma_power unresolved: pass the config through energen.training.resolve_config")
        if self.horizon_is_time:
            weighting = Constant(1.0)
        else:
            kw = {"scale": cfg.c_scale} | ({"a": cfg.c_a} if cfg.c_schedule == "truncated" else {})
            weighting = WEIGHTINGS.get(cfg.c_schedule)(**kw)
        return FieldMatching(
            weighting=weighting, time_conditioned=self.time_conditioned, label_dropout=cfg.label_dropout,
            num_classes=num_classes, dispersive=cfg.dispersive, gamma_power=cfg.gamma_power,
        )  # fmt: skip


@dataclass(frozen=True)
class RecoveryMethod(Method):
    """DRL (``cooperative=False``) and CDRL: a level-conditioned energy network, and CDRL's initializer."""

    cooperative: bool = False
    native_sampler: str = "recovery"

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        low_dim = math.prod(data_shape) <= 16
        # b^2 of s_i^2 = b^2 c_i sigma_{i+1}^2: the reference's 2-D toy value for low-dimensional data (with a
        # constant c_i, see NoiseLevels). Otherwise DRL keeps the reference's image value 2e-4; CDRL takes 1e-3
        # rather than the reference's 4e-4: on digits (standardised, 15 steps per level) FD-digits fell from
        # 2.86 to 1.28 with it (README, Results), while DRL's 30 steps of 2e-4 give 1.43.
        b2 = 2e-3 if low_dim else (1e-3 if self.cooperative else 2e-4)
        # The reference's toy runs on data of standard deviation ~4.6 (unit squares x4) under noise N(0, I);
        # standardised low-dimensional data are scaled by 4 to sit at the same signal-to-noise ratios.
        defaults = {"langevin_steps": 15 if self.cooperative else 30, "langevin_b2": b2, "pairing": self.cooperative,
                    "data_scale": 4.0 if low_dim else 1.0}  # fmt: skip
        return _fill(cfg, adam_beta1=0.9, **defaults)

    def param_groups(self, model: nn.Module, cfg: TrainConfig) -> list[dict]:
        groups = [{"params": list(model.ebm.parameters()), "lr": cfg.lr, "name": "ebm"}]
        if model.initializer is not None:
            groups.append({"params": list(model.initializer.parameters()), "lr": cfg.init_lr or cfg.lr,
                           "name": "initializer"})  # fmt: skip
        return groups

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        shape = tuple(data_shape)
        ebm = MODELS.get(cfg.model)(NetSpec(shape, time_conditioned=True, num_classes=num_classes, scalar=True))
        init = None
        if self.cooperative:
            spec = NetSpec(shape, time_conditioned=True, num_classes=num_classes)
            init = Initializer(MODELS.get(cfg.init_model)(spec))
        levels = NoiseLevels(cfg.levels, b2=cfg.langevin_b2, constant_c=math.prod(shape) <= 16)
        return RecoveryModel(ebm, init, levels, data_scale=cfg.data_scale or 1.0)

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo) -> RecoveryLikelihood:
        if cfg.langevin_steps is None or cfg.pairing is None:
            raise ValueError("unresolved recovery options: pass the config through energen.training.resolve_config")
        return RecoveryLikelihood(langevin_steps=cfg.langevin_steps, pairing=cfg.pairing,
                                  label_dropout=cfg.label_dropout, num_classes=num_classes)  # fmt: skip


VECTOR_STEP = 0.002  # cd on vectors: the chains' gradient step eta


VECTOR_ENERGY_REG = 0.01  # cd on vectors: alpha


VECTOR_DATA_SCALE = 6.0  # cd on vectors: the energy network sees 6 x the normalised data


@dataclass(frozen=True)
class ContrastiveMethod(Method):
    """Contrastive divergence (IGEBM, Improved CD): a scalar energy, Langevin negatives from a replay buffer."""

    native_sampler: str = "langevin"

    def default_model(self, data_shape: tuple[int, ...]) -> str:
        return "resnet" if len(data_shape) == 3 else default_model(data_shape)

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        if cfg.icd_augment and len(data_shape) != 3:
            raise ConfigError("--icd-augment shifts images; the data are not images")
        if len(data_shape) == 3:
            # IGEBM's chain (step 10, gradient clip 0.01, noise 0.005 on [0, 1] pixels) on energen's [-1, 1]
            # pixels: nearly noiseless clipped gradient descent, a pixel moving at most 0.2 a step; alpha 1
            chain = {"langevin_step": 40.0, "langevin_noise": 0.01, "langevin_clip": 0.005, "langevin_clamp": True,
                     "energy_reg": 1.0, "data_scale": 1.0, "buffer_init": "uniform",
                     "buffer_reinit": 0.05, "langevin_mh": False, "data_jumps": False}  # fmt: skip
        else:
            # exact Langevin (temperature 1) with a step small beside the modes of standardised data, no clamp
            # (chains stuck at a box edge drive the energy gap up), and a weak alpha: alpha pulls every energy
            # towards 0, and at IGEBM's 1 the learned modes come out several times too wide (README, Results).
            # The network sees 6 x the data: spectrally normalised on 1 x, its features vary too slowly for
            # 8gaussians' narrow modes (a ring with bumps), and at 3 x 4,000 steps left rings' inner two circles a
            # disk (a fit by regression carves them at 3 x too, in half the steps at 6 x: the slow features are
            # learnt first); free of the bound, the checkerboard's gap runs away.
            # The chains sample exp(-E) exactly where they can (README, "Densities that show every mode"):
            # Metropolis-adjusted (else the energy learns to correct their bias: sharp wells), started fresh at
            # data points plus noise (fresh starts from noise leave a tilt: the energy learns to carry the chains
            # there), and moved between modes by Metropolis jumps to the data (else the modes' weights drift)
            eta = cfg.langevin_step or VECTOR_STEP
            noise = math.sqrt(2 * eta) if cfg.langevin_noise is None else cfg.langevin_noise
            exact = math.isclose(noise, math.sqrt(2 * eta)) and not cfg.langevin_clip and not cfg.langevin_clamp
            chain = {"langevin_step": eta, "langevin_noise": noise, "langevin_clip": 0.0,
                     "langevin_clamp": False, "energy_reg": VECTOR_ENERGY_REG,
                     "data_scale": VECTOR_DATA_SCALE, "buffer_init": "data", "buffer_reinit": 0.2,
                     "langevin_mh": exact and cfg.icd_kl == 0 and cfg.icd_entropy == 0,
                     "data_jumps": True}  # fmt: skip
        # Adam without momentum, as IGEBM and ICD train their energies: the negatives move with the model.
        # Spectral norm as IGEBM: without it the 2-D energies grow sharp wells and the gap runs away
        out = _fill(cfg, langevin_steps=20, adam_beta1=0.0, spectral_norm=True, **chain)
        if out.langevin_mh:
            check_mh(step=out.langevin_step, noise=out.langevin_noise, clipped=bool(out.langevin_clip),
                     clamped=bool(out.langevin_clamp), icd=out.icd_kl > 0 or out.icd_entropy > 0)  # fmt: skip
        return out

    def build_model(self, cfg: TrainConfig, data_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        net = MODELS.get(cfg.model)(NetSpec(tuple(data_shape), num_classes=num_classes, scalar=True))
        return ScalarEnergy(spectral_normalise(net) if cfg.spectral_norm else net, data_scale=cfg.data_scale or 1.0)

    def objective(self, cfg: TrainConfig, num_classes: int, info: DataInfo) -> ContrastiveDivergence:
        if None in (cfg.langevin_steps, cfg.langevin_step, cfg.langevin_noise, cfg.langevin_clip, cfg.langevin_clamp,
                    cfg.energy_reg):  # fmt: skip
            raise ValueError("unresolved cd options: pass the config through energen.training.resolve_config")
        box = data_box(info)
        buffer = ReplayBuffer(cfg.buffer_size, info.shape, reinit=cfg.buffer_reinit, box=box, seed=cfg.seed,
                              reservoir=cfg.buffer_reservoir, init=cfg.buffer_init or "uniform")  # fmt: skip
        return ContrastiveDivergence(
            buffer=buffer, steps=cfg.langevin_steps, step=cfg.langevin_step, noise=cfg.langevin_noise,
            grad_clip=cfg.langevin_clip or None, clamp=box if cfg.langevin_clamp else None, energy_reg=cfg.energy_reg,
            kl=cfg.icd_kl, entropy=cfg.icd_entropy, augment=cfg.icd_augment,
            label_dropout=cfg.label_dropout, num_classes=num_classes, mh=bool(cfg.langevin_mh),
            jump=bool(cfg.data_jumps),
        )  # fmt: skip


def _fill(cfg: TrainConfig, **defaults) -> TrainConfig:
    """``cfg`` with its ``None`` fields among ``defaults`` set to the default."""
    return replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})


def data_box(info: DataInfo) -> tuple[float, float]:
    """The data's value range in normalised coordinates: images as they are; vectors the box holding every
    dimension's range, widened by 5% of its width on each side."""
    lo = [(info.lo - s) / c for s, c in zip(info.shift, info.scale, strict=True)]
    hi = [(info.hi - s) / c for s, c in zip(info.shift, info.scale, strict=True)]
    a, b = min(lo), max(hi)
    pad = 0.05 * (b - a) if info.kind == "vector" else 0.0
    return a - pad, b + pad


METHODS: Registry[Method] = Registry("method")


METHODS.add("eqm", Method("eqm", "Equilibrium Matching: a time-free equilibrium gradient field", False, False, False))


METHODS.add("eqm-e", Method("eqm-e", "Equilibrium Matching with an explicit scalar energy", False, True, False))


METHODS.add("fm", Method("fm", "flow matching baseline: a time-conditioned velocity field", True, False, True))


METHODS.add("drl", RecoveryMethod("drl", "diffusion recovery likelihood: an EBM per noise level, Langevin from x_{t+1}",
                                   True, True, False))  # fmt: skip


METHODS.add("cdrl", RecoveryMethod("cdrl", "cooperative DRL: DRL plus an initializer network that proposes each chain",
                                    True, True, False, cooperative=True))  # fmt: skip


METHODS.add("cd", ContrastiveMethod("cd", "contrastive divergence (IGEBM, Improved CD): Langevin from a replay buffer",
                                    False, True, False))  # fmt: skip
