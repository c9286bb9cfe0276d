r"""Denoising: restore partly noised inputs by descending the learned landscape.

EqM and EqM-E need no noise level: their field vanishes on the data, so gradient descent from a noisy
input stops on the data manifold near it (the EqM paper's "partially noised image denoising"). Contrastive
divergence descends its energy the same way (its Langevin chain runs at temperature 0 unless told
otherwise: restoration wants the nearest likely point, not a fresh sample). Methods whose sampler depends
on the noise level need it: flow matching starts at the time of its path that holds that much noise, and
DRL/CDRL join their ladder of noise levels at the level that does (:meth:`energen.sampling.Run.chains`).
"""

from __future__ import annotations

from torch import Tensor

from ..errors import ConfigError
from ..run import Run
from ..samplers.base import SamplerOutput
from ..samplers.settings import SamplerSettings


def normalised_std(run: Run, noise_std: float) -> float:
    """A noise std in data units as a std in the model's normalised units (vectors: the RMS of the
    per-dimension scales)."""
    scale = run.info.scale
    return noise_std / (sum(s * s for s in scale) / len(scale)) ** 0.5


def denoise(run: Run, x: Tensor, *, noise_std: float | None = None, settings: SamplerSettings | None = None,
            seed: int = 0, batch_size: int = 1000) -> tuple[Tensor, SamplerOutput]:  # fmt: skip
    """Restore ``x`` (data coordinates, model layout, shape (N, ...)); returns the restored points (data
    coordinates) and the sampler's output.

    Args:
        noise_std: the std of the noise in ``x``, in data units; required by flow matching and the recovery
            sampler, ignored by the time-free methods.
        settings: the sampler (default: the run's; a Langevin chain at temperature 0).
    """
    settings = settings or restoring_settings(run.default_sampler)
    if run.needs_noise_level(settings) and noise_std is None:
        how = "flow matching starts at the time" if run.learns_velocity else "the recovery sampler starts at the level"
        raise ConfigError(f"method {run.cfg.method!r} needs the noise level ({how} that holds that much noise): "
                          "pass --noise-std, the noise's std in data units")  # fmt: skip
    sigma = None if noise_std is None else normalised_std(run, noise_std)
    z, out = run.chains(len(x), x0=run.info.normalize(x), seed=seed, settings=settings, noise_std=sigma,
                        batch_size=batch_size)  # fmt: skip
    return run.info.denormalize(z), out


def restoring_settings(s: SamplerSettings) -> SamplerSettings:
    """A Langevin sampler (or smc's chain) at temperature 0 (gradient descent on the energy); other samplers as
    they are."""
    s = s.as_chain()
    return s.with_options(temperature=0.0) if "temperature" in s.options() and not s.walks_levels else s
