r"""Contrastive divergence (IGEBM, Improved CD): a scalar energy trained to be low on the data and high on
negatives drawn by Langevin chains that persist in a replay buffer
(:class:`~energen.losses.contrastive_divergence.ContrastiveDivergence`,
:class:`~energen.losses.replay_buffer.ReplayBuffer`).

Its defaults depend on the data: on vectors the energy is trained as a density (exact Metropolis-adjusted chains
with data jumps) and sampled by SMC; on images IGEBM's nearly noiseless clipped chain (docs/methods/contrastive.md).
"""

from __future__ import annotations

import math

from torch import nn

from ..config import TrainConfig
from ..data.info import DataInfo
from ..errors import ConfigError
from ..losses.contrastive_divergence import ContrastiveDivergence, check_mh
from ..losses.replay_buffer import ReplayBuffer
from ..networks.base import MODELS, NetSpec, default_model
from ..networks.energy import ScalarEnergy, spectral_normalise
from ..samplers.langevin import LangevinSettings
from ..samplers.settings import SamplerSettings
from ..samplers.smc import SMCSettings
from .base import Method, fill

VECTOR_STEP = 0.002  # cd on vectors: the chains' gradient step eta
VECTOR_ENERGY_REG = 0.01  # cd on vectors: alpha
VECTOR_DATA_SCALE = 6.0  # cd on vectors: the energy network sees 6 x the normalised data


class ContrastiveDivergenceMethod(Method):
    """``cd``: contrastive divergence (IGEBM, Improved CD): a scalar energy, Langevin negatives from a replay
    buffer."""

    models_density = True
    keeps_buffer = True

    def default_model(self, data_shape: tuple[int, ...]) -> str:
        return "resnet" if len(data_shape) == 3 else default_model(data_shape)

    def resolve(self, cfg: TrainConfig, data_shape: tuple[int, ...]) -> TrainConfig:
        if cfg.compile and cfg.icd_kl > 0:
            raise ConfigError("--compile cannot train through a gradient of the energy (--icd-kl): torch.compile "
                              "has no double backward")  # fmt: skip
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
            # towards 0, and at IGEBM's 1 the learned modes come out several times too wide
            # (docs/methods/contrastive.md).
            # The network sees 6 x the data: spectrally normalised on 1 x, its features vary too slowly for
            # 8gaussians' narrow modes (a ring with bumps), and at 3 x 4,000 steps left rings' inner two circles a
            # disk (a fit by regression carves them at 3 x too, in half the steps at 6 x: the slow features are
            # learnt first); free of the bound, the checkerboard's gap runs away.
            # The chains sample exp(-E) exactly where they can (docs/methods/contrastive.md):
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
        out = fill(cfg, langevin_steps=20, adam_beta1=0.0, spectral_norm=True, **chain)
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
        box = info.box()
        buffer = ReplayBuffer(cfg.buffer_size, info.shape, reinit=cfg.buffer_reinit, box=box, seed=cfg.seed,
                              reservoir=cfg.buffer_reservoir, init=cfg.buffer_init or "uniform")  # fmt: skip
        return ContrastiveDivergence(
            buffer=buffer, steps=cfg.langevin_steps, step=cfg.langevin_step, noise=cfg.langevin_noise,
            grad_clip=cfg.langevin_clip or None, clamp=box if cfg.langevin_clamp else None, energy_reg=cfg.energy_reg,
            kl=cfg.icd_kl, entropy=cfg.icd_entropy, augment=cfg.icd_augment,
            label_dropout=cfg.label_dropout, num_classes=num_classes, mh=bool(cfg.langevin_mh),
            jump=bool(cfg.data_jumps),
        )  # fmt: skip

    def migrate(self, saved: dict) -> dict:
        """Runs written before the data-dependent cd defaults clamped their chains and did not clip unless told;
        before cd scaled its inputs, the network saw 1 x the data; before fresh chains could start normal, they
        started uniform; before Metropolis-adjusted chains and data jumps (``None`` now means on for vectors),
        neither was on."""
        d = dict(saved)
        if "langevin_clamp" not in d:
            d |= {"langevin_clamp": True, "langevin_clip": d.get("langevin_clip") or 0.0}
        if d.get("data_scale") is None:
            d["data_scale"] = 1.0
        if d.get("buffer_init") is None:
            d["buffer_init"] = "uniform"
        d["langevin_mh"] = d.get("langevin_mh") or False
        d["data_jumps"] = d.get("data_jumps") or False
        return d

    def default_sampler(self, cfg: TrainConfig, info: DataInfo) -> SamplerSettings:
        """The training chain, 10x its length, from noise: trained as a density (Metropolis-adjusted chains with
        data jumps), SMC samples it on the data's box; else Langevin with the training chain's step, noise (as the
        temperature sigma^2 / (2 eta)), clip and clamp."""
        steps, eta = 10 * cfg.langevin_steps, cfg.langevin_step
        if cfg.langevin_mh and cfg.data_jumps:
            return SMCSettings(steps=steps, step_size=eta, box=info.box())
        noise = math.sqrt(2 * eta) if cfg.langevin_noise is None else cfg.langevin_noise
        return LangevinSettings(steps=steps, step_size=eta, temperature=noise**2 / (2 * eta),
                                grad_clip=cfg.langevin_clip or None,
                                clamp=info.box() if cfg.langevin_clamp else None)  # fmt: skip
