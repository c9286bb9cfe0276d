"""The record every loss returns, and helpers the losses share."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class LossOutput:
    """per_sample: shape (B,), the loss of each sample; stats: scalar diagnostics for the log; problem: why
    training cannot go on (the loop stops with it and the step), or None."""

    per_sample: Tensor
    stats: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


def drop_labels(y: Tensor | None, p: float, num_classes: int, generator: torch.Generator) -> Tensor | None:
    """Classifier-free guidance training: each label replaced by the null label ``num_classes`` with
    probability ``p`` (unconditional models and unlabelled batches pass through)."""
    if y is None or num_classes == 0:
        return y
    drop = torch.rand(len(y), generator=generator).to(y.device) < p
    return torch.where(drop, torch.full_like(y, num_classes), y)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(model, "module", model)
