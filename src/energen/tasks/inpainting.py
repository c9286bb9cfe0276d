r"""In-painting (completion): fill the unknown entries of inputs, holding the known ones.

The unknown entries start from noise and follow the run's sampler; after every step the known entries are
put back (for flow matching: on their own straight path from the start noise to the observed values, so
that the network always sees points of its training path). The time-free methods then re-noise the filled
part and descend again, a few rounds (see :func:`inpaint`). DRL/CDRL run their ladder of noise levels with
the known entries noised to each level as it is reached (a single RePaint pass). Several completions of
one input differ only in their noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..run import Run
from ..samplers.base import SamplerOutput
from ..samplers.settings import SamplerSettings
from ..utils import derived_noise, derived_seed

ROUNDS = 10  # descents of the time-free methods; on digits (lower half masked, EqM) 1 / 3 / 10 rounds put


def broadcast_mask(mask: Tensor, x: Tensor) -> Tensor:
    """A mask of one sample's shape or of ``x``'s shape, as a boolean tensor of ``x``'s shape (1: known)."""
    if tuple(mask.shape) == tuple(x.shape[1:]):
        mask = mask.expand_as(x)
    if tuple(mask.shape) != tuple(x.shape):
        raise DataError(f"mask of shape {tuple(mask.shape)} fits neither one input {tuple(x.shape[1:])} nor all "
                        f"inputs {tuple(x.shape)}")  # fmt: skip
    values = torch.unique(mask)
    if not bool(((values == 0) | (values == 1)).all()):
        raise DataError("mask must hold only 0 (to fill) and 1 (known)")
    return mask.bool()


def inpaint(run: Run, x: Tensor, mask: Tensor, *, completions: int = 1, settings: SamplerSettings | None = None,
            seed: int = 0, label: int | None = None, cfg_scale: float = 1.0, rounds: int | None = None,
            renoise: float = 0.5, batch_size: int = 1000) -> tuple[Tensor, SamplerOutput]:  # fmt: skip
    r"""Complete ``x`` (data coordinates, shape (N, ...)) where ``mask`` is 0.

    Returns ``completions`` completions of each input, shape (N * completions, ...) in data coordinates,
    input-major (rows ``i * completions ... (i + 1) * completions - 1`` complete input ``i``), and the
    sampler's output of the last round. ``label``: complete as this class (conditional runs, guided by
    ``cfg_scale``).

    ``rounds`` (time-free methods: EqM, EqM-E, cd; default ROUNDS): after a descent, the unknown entries are
    partly re-noised, :math:`(1 - r)\,x + r\,\varepsilon` with ``renoise`` r, and descended again with the
    known entries held, so that the filled part and the known part come to agree (RePaint's resampling).
    Flow matching and the recovery sampler make one pass.
    """
    if completions < 1:
        raise ValueError("completions must be >= 1")
    settings = settings or run.default_sampler
    time_free = not run.needs_noise_level(settings)
    if rounds is None:
        rounds = ROUNDS if time_free else 1
    if rounds < 1 or (rounds > 1 and not time_free):
        raise ConfigError("--rounds must be >= 1, and 1 for flow matching and the recovery sampler (one pass)")
    if not 0 < renoise <= 1:
        raise ConfigError(f"--renoise must be in (0, 1], got {renoise}")
    mask = broadcast_mask(mask, x).repeat_interleave(completions, 0)
    z = run.info.normalize(x).repeat_interleave(completions, 0)
    labels = None if label is None else run.labels(label, len(z))

    def descend(x0: Tensor | None, r: int) -> tuple[Tensor, SamplerOutput]:  # round r's chains: its own streams
        return run.chains(len(z), x0=x0, seed=derived_seed(seed, 2 * r), settings=settings, labels=labels,
                          cfg_scale=cfg_scale, known=(mask, z), batch_size=batch_size)  # fmt: skip

    out_z, out = descend(None, 0)
    for r in range(1, rounds):
        eps = derived_noise(seed, 2 * r + 1, len(z), z.shape[1:])  # round r's re-noising, apart from every chain
        out_z, out = descend((1 - renoise) * out_z + renoise * eps, r)
    return run.info.denormalize(out_z), out
