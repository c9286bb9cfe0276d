r"""Samplers: gradient descent, Nesterov-accelerated gradient descent, and ODE integration.

Every sampler takes any :class:`~energen.fields.Field` and moves points *along* it. For EqM the field is
the negative gradient of an implicit energy, so following it is gradient descent on that energy; for flow
matching it is a velocity, and gradient descent with ``step_size = 1/steps`` is exactly Euler integration.
Progress ``t_k = min(1, k * step_size)`` is passed to the field at every step: time-free models ignore it.

Adaptive compute (EqM paper): with ``tol`` set, a sample stops as soon as the RMS of the field at its
current point falls below ``tol`` (the field vanishes on the data manifold), and stopped samples cost no
more evaluations. ``SamplerOutput.steps`` reports the steps each sample used.

Randomness is injected: the optional annealed noise of :class:`GradientDescent` is drawn by a callable
``noise(idx) -> Tensor`` of shape (len(idx), ...) for the samples ``idx`` still moving. With
:class:`~energen.utils.PerSampleNoise` (as :meth:`energen.sampling.Run.sample` uses) a sample depends only
on its own seed, never on the batch it was drawn in.

Constraints (in-painting): the step samplers take ``constrain(x, idx, t) -> x``, applied to the points
``x = x_full[idx]`` after every step with their new progress ``t``; it holds known entries at observed
values (or, for flow matching, on their own path to them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

NoiseSource = Callable[[Tensor], Tensor]


"""``noise(idx) -> Tensor`` of shape (len(idx), ...): fresh standard normal noise for samples ``idx``."""


Constraint = Callable[[Tensor, Tensor, Tensor], Tensor]


"""``constrain(x, idx, t) -> Tensor`` of x's shape: the points of samples ``idx`` made to obey a constraint."""


@dataclass
class SamplerOutput:
    """The result of a sampler.

    Attributes:
        x: shape (B, ...), final points.
        steps: shape (B,), steps (field evaluations for ODE solvers) each sample used.
        field_norm: shape (B,), RMS of the field at each sample's last evaluation.
        nfe: number of batched field evaluations.
        snapshots: ``{k: x after k steps}`` for the steps listed in ``record``.
    """

    x: Tensor
    steps: Tensor
    field_norm: Tensor
    nfe: int
    snapshots: dict[int, Tensor] = field(default_factory=dict)


def _as_labels(y: Tensor | None, n: int, device) -> Tensor | None:
    return None if y is None else y.to(device).expand(n) if y.dim() == 0 else y.to(device)
