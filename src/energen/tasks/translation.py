r"""Cross-class translation: turn real inputs into another class while keeping what the classes share.

Each input is partly noised, :math:`x_s = (1 - s)\,x + s\,\varepsilon` (``strength`` :math:`s`, the noise
fraction of EqM's and flow matching's interpolant), then the run's sampler, guided to the target class,
carries it back to the data (SDEdit's recipe, IGEBM's translation by Langevin under the target's energy).
Flow matching starts at time :math:`1 - s` of its path; DRL/CDRL at the noise level holding
:math:`s / (1 - s)` noise per unit of signal. Small ``s`` keeps more of the source, large ``s`` follows the
target class more surely.
"""

from __future__ import annotations

from torch import Tensor

from ..errors import ConfigError
from ..run import Run
from ..samplers.base import SamplerOutput
from ..samplers.settings import SamplerSettings
from ..utils import derived_noise


def translate(run: Run, x: Tensor, target: int, *, strength: float = 0.5, settings: SamplerSettings | None = None,
              seed: int = 0, cfg_scale: float = 1.0, batch_size: int = 1000) -> tuple[Tensor, SamplerOutput]:  # noqa: E501 # fmt: skip
    """Translate ``x`` (data coordinates, shape (N, ...)) to class ``target``; returns data coordinates."""
    if not 0 < strength < 1:
        raise ConfigError(f"--strength must be in (0, 1), got {strength}")
    labels = run.labels(target, len(x))
    settings = settings or run.default_sampler
    z = run.info.normalize(x)
    eps = derived_noise(seed, 1, len(z), z.shape[1:])  # the start noise, apart from the chains' (seed + i)
    sigma = strength / (1 - strength)
    x0 = z + sigma * eps  # data plus sigma noise: the start of fm and of the recovery ladder
    if not run.needs_noise_level(settings):
        x0 = (1 - strength) * x0  # the time-free methods' interpolant
    out_z, out = run.chains(len(z), x0=x0, seed=seed, settings=settings, labels=labels, cfg_scale=cfg_scale,
                            noise_std=sigma, batch_size=batch_size)  # fmt: skip
    return run.info.denormalize(out_z), out
