"""Nesterov-accelerated gradient descent (EqM's NAG-GD)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..samplers.gradient_descent import GDSettings, GradientDescent
from ..samplers.registry import SAMPLERS


class Nesterov(GradientDescent):
    r"""Nesterov-accelerated gradient descent as in EqM's ``sample_gd.py``:

    .. math::  \tilde x = x + \eta\mu\, m, \qquad m \leftarrow f(\tilde x), \qquad x \leftarrow x + \eta\, m

    (``m`` is the field at the look-ahead point, starting at 0). ``momentum`` is :math:`\mu` (default 0.3).
    Adaptive stopping looks at the field at the look-ahead point.
    """

    def __init__(self, *, momentum: float = 0.3, **kw):
        super().__init__(**kw)
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def _init_state(self, x: Tensor) -> dict:
        return {"m": torch.zeros_like(x)}

    def _direction(self, field, x, t, y, state, idx):
        m = state["m"]
        d = field(x + self.step_size * self.momentum * m[idx], t, y)
        m[idx] = d
        return d


@SAMPLERS.register("nag")
@dataclass(frozen=True)
class NAGSettings(GDSettings):
    """``nag``: the options of ``gd`` and the momentum mu."""

    name: ClassVar[str] = "nag"
    momentum: float = 0.3

    def build(self, record=()) -> Nesterov:
        return Nesterov(steps=self.steps, step_size=self.step_size, tol=self.tol, noise=self.noise,
                        momentum=self.momentum, record=record)  # fmt: skip
