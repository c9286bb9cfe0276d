"""Exponential moving average of weights, parameterised by a half-life in samples (EDM).

After a step of ``batch`` samples the average keeps :math:`\\beta = 0.5^{batch / h}` of itself, so the
smoothing is the same whatever the batch size. With ``rampup`` the half-life is at most
``rampup * samples_seen``, so early weights are forgotten quickly in short runs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, *, halflife_samples: float, rampup: float = 0.0):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.halflife, self.rampup = float(halflife_samples), float(rampup)

    def beta(self, batch: int, samples_seen: int) -> float:
        h = self.halflife
        if self.rampup > 0:
            h = min(h, self.rampup * samples_seen)
        return 0.5 ** (batch / max(h, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, *, batch: int, samples_seen: int) -> None:
        b = self.beta(batch, samples_seen)
        ema_params, params = list(self.model.parameters()), [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError("the EMA and the model have different parameters")
        torch._foreach_lerp_(ema_params, params, 1 - b)  # one fused update over all tensors (as timm)
        for be, bm in zip(self.model.buffers(), model.buffers(), strict=True):
            be.copy_(bm)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, sd) -> None:
        self.model.load_state_dict(sd)
