"""Gradient descent along a field, with adaptive stopping and annealed noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import Field
from ..samplers.base import Constraint, NoiseSource, SamplerOutput, _as_labels
from ..samplers.registry import SAMPLERS
from ..samplers.settings import SamplerSettings
from ..utils import expand_like, rms_flat


class GradientDescent:
    r""":math:`x_{k+1} = x_k + \eta\, f(x_k, t_k) + \sqrt{2\eta}\, \sigma_k\, z_k`.

    Args:
        steps: maximum number of steps K.
        step_size: :math:`\eta`, a float or a tensor of shape (B,) giving each sample its own.
        tol: stop a sample once the RMS of its field is below ``tol`` (``None``: always K steps).
        noise: the initial noise scale :math:`\sigma_0`, annealed linearly to 0 over the K steps (0 disables
            it); :math:`\sigma = 1` is Langevin noise at temperature 1.
        anneal: anneal the noise scale (``False``: constant ``noise``).
        record: step counts at which to keep a copy of x (for quality-versus-steps curves).
    """

    def __init__(self, *, steps: int, step_size: float | Tensor, tol: float | None = None, noise: float = 0.0,
                 anneal: bool = True, record: Sequence[int] = ()):  # fmt: skip
        positive = bool((torch.as_tensor(step_size) > 0).all())
        if steps < 1 or not positive or (tol is not None and not tol > 0) or noise < 0:
            raise ConfigError("sampler needs steps >= 1, step_size > 0, tol > 0 (or none) and noise >= 0")
        self.steps, self.tol, self.noise, self.anneal = int(steps), tol, float(noise), bool(anneal)
        self.step_size = step_size if isinstance(step_size, Tensor) else float(step_size)
        self.record = set(int(k) for k in record)

    def _project(self, x: Tensor) -> Tensor:
        """Applied to the points after every step (identity; Langevin may clamp to the data range)."""
        return x

    def _init_state(self, x: Tensor) -> dict:
        return {}

    def _direction(self, field: Field, x: Tensor, t: Tensor, y: Tensor | None, state: dict, idx: Tensor) -> Tensor:
        """The update direction for the points ``x = x_full[idx]``; subclasses keep per-sample state."""
        return field(x, t, y)

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        """Run from x0 (shape (B, ...)) with labels y (shape (B,) or None); ``noise`` and ``constrain`` as in
        the module doc (default noise: the global torch RNG)."""
        x = x0.clone()
        n = x.shape[0]
        y = _as_labels(y, n, x.device)
        steps = torch.zeros(n, dtype=torch.long, device=x.device)
        norm = torch.full((n,), math.inf, device=x.device)
        active = torch.arange(n, device=x.device)
        state = self._init_state(x)
        eta = torch.as_tensor(self.step_size, dtype=x.dtype, device=x.device).expand(n)  # per-sample step sizes
        snapshots, nfe = {}, 0
        for k in range(self.steps):
            if 0 in self.record and k == 0:
                snapshots[0] = x.clone()
            t = (k * eta[active]).clamp(max=1.0)
            xa = x[active]
            d = self._direction(field, xa, t, None if y is None else y[active], state, active)
            nfe += 1
            norm[active] = rms_flat(d).to(norm.dtype)
            if self.tol is not None:
                keep = norm[active] >= self.tol
                active, xa, d = active[keep], xa[keep], d[keep]
            ea = expand_like(eta[active], xa)
            xa = xa + ea * d
            if self.noise > 0 and len(active):
                temp = self.noise * (1 - k / self.steps) if self.anneal else self.noise
                z = noise(active) if noise is not None else torch.randn_like(xa)
                xa = xa + (2 * ea).sqrt() * temp * z.to(xa)
            xa = self._project(xa)
            if constrain is not None:
                xa = constrain(xa, active, ((k + 1) * eta[active]).clamp(max=1.0))
            x[active] = xa
            steps[active] += 1
            if k + 1 in self.record:
                snapshots[k + 1] = x.clone()
            if len(active) == 0:
                break
        for k in self.record:  # samples that all stopped early stay where they stopped
            if k <= self.steps and k not in snapshots:
                snapshots[k] = x.clone()
        return SamplerOutput(x=x, steps=steps, field_norm=norm, nfe=nfe, snapshots=snapshots)


@SAMPLERS.register("gd")
@dataclass(frozen=True)
class GDSettings(SamplerSettings):
    """``gd``: K steps of eta (total time eta K), adaptive stopping at ``tol``, annealed noise scale ``noise``."""

    name: ClassVar[str] = "gd"
    step_size: float = 0.005
    tol: float | None = None
    noise: float = 0.0

    def build(self, record=()) -> GradientDescent:
        return GradientDescent(steps=self.steps, step_size=self.step_size, tol=self.tol, noise=self.noise,
                               record=record)  # fmt: skip
