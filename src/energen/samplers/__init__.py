"""Samplers: each moves points along a :class:`~energen.fields.Field` (or walks a recovery model's levels).

One module per sampler; importing this package registers every field sampler in :data:`SAMPLERS`.
"""

from .base import SamplerOutput
from .gradient_descent import GradientDescent
from .langevin import Langevin
from .mala import MetropolisLangevin
from .nesterov import Nesterov
from .ode import ODE_METHODS, ODESolver
from .recovery import AncestralSampler
from .registry import SAMPLERS
from .settings import SamplerSettings
from .smc import SequentialMonteCarlo

__all__ = [
    "ODE_METHODS", "SAMPLERS", "AncestralSampler", "GradientDescent", "Langevin", "MetropolisLangevin", "Nesterov",
    "ODESolver", "SamplerOutput", "SamplerSettings", "SequentialMonteCarlo",
]  # fmt: skip
