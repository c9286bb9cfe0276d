"""energen: energy-based generative modelling (Equilibrium Matching, recovery likelihood, contrastive divergence).

The public pieces, one concept per module:

- :mod:`energen.fields` - the field protocol ``f(x, t, y)`` and :class:`EnergyField` (energy -> -grad E);
- :mod:`energen.interpolants` - the linear path and EqM's c(gamma) weightings;
- :mod:`energen.objectives` - per-sample training losses;
- :mod:`energen.samplers` - gradient descent, Nesterov, ODE integration;
- :mod:`energen.networks`, :mod:`energen.data`, :mod:`energen.metrics`, :mod:`energen.checkpoint`;
- :mod:`energen.training` (the loop) and :mod:`energen.sampling` (loading runs, drawing samples).
"""

from __future__ import annotations

from .config import TrainConfig
from .fields import EnergyField, GuidedField, SumField
from .networks import transformer, unet  # noqa: F401  (register the EqM-* transformers and the U-Nets)
from .run import Run
from .samplers.gradient_descent import GradientDescent
from .samplers.nesterov import Nesterov
from .samplers.ode import ODESolver
from .samplers.settings import SamplerSettings
from .training.loop import train

__all__ = [
    "EnergyField", "GradientDescent", "GuidedField", "Nesterov", "ODESolver", "Run", "SamplerSettings", "SumField",
    "TrainConfig", "train",
]  # fmt: skip


__version__ = "0.1.0"
