r"""The field protocol every sampler consumes, and adapters that produce fields.

A *field* is any callable ``field(x, t=None, y=None) -> Tensor`` returning a tensor of ``x``'s shape:

- ``x``: shape (B, ...), the current points;
- ``t``: shape (B,) or ``None``, the sampler's progress in [0, 1] (data at 1, noise at 0, the convention
  of flow_matching and SiT). Time-free models (EqM, EqM-E) ignore it; flow matching needs it;
- ``y``: shape (B,) integer class labels or ``None``.

Samplers move points *along* the field: :math:`x \leftarrow x + \eta\, f(x)`. A scalar energy
:math:`E(x)` therefore enters through :class:`EnergyField`, which returns :math:`f = -\nabla_x E` by
autograd, so that one sampler serves methods that learn a gradient (EqM, flow matching) and methods that
learn an energy (EqM-E, contrastive divergence, recovery likelihood) alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from .errors import ConfigError


class Field(Protocol):
    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor: ...


Energy = Callable[..., Tensor]


"""``energy(x, t, y) -> Tensor`` of shape (B,): one scalar energy per sample."""


class EnergyField:
    r"""Turn a scalar energy into the field :math:`f(x) = -\nabla_x E(x)` by autograd.

    Args:
        energy: callable ``energy(x, t, y)`` returning shape (B,).
        create_graph: keep the graph of the gradient, so that a loss on the field can be back-propagated
            to the energy's parameters (double backward; needed to *train* EqM-E). Off for sampling.

    Works under ``torch.no_grad()``: gradients are switched on locally.
    """

    def __init__(self, energy: Energy, *, create_graph: bool = False):
        self.energy = energy
        self.create_graph = create_graph

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return self.energy_and_field(x, t, y)[1]

    def energy_and_field(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The energy, shape (B,), and the field :math:`-\nabla_x E` from one evaluation (MALA needs both)."""
        with torch.enable_grad():
            if not self.create_graph:
                x = x.detach()
            if not x.requires_grad:
                x = x.requires_grad_(True)
            e = self.energy(x, t, y)
            if e.shape != x.shape[:1]:
                raise ValueError(f"energy must have shape (B,) = {tuple(x.shape[:1])}, got {tuple(e.shape)}")
            (grad,) = torch.autograd.grad(e.sum(), x, create_graph=self.create_graph)
        return (e, -grad) if self.create_graph else (e.detach(), -grad.detach())


class FieldEnergy:
    r"""The energy a field implies, by its line integral from the origin:
    :math:`E(x) = -\int_0^1 f(s x)\cdot x \, ds`, by Gauss-Legendre quadrature with ``nodes`` points (``nodes``
    field evaluations an energy). For a gradient field :math:`f = -\nabla E` this is :math:`E(x) - E(0)`,
    exact up to the quadrature; for a field that is not a gradient (EqM's is one only approximately) it is the
    energy along rays from the origin. Lets samplers that weigh points by their energy (SMC) run on every model;
    :meth:`energy_and_field` pairs it with the field itself, not with the gradient of the integral.
    """

    def __init__(self, field: Field, nodes: int = 8):
        import numpy as np

        s, w = np.polynomial.legendre.leggauss(nodes)
        self.field, self.s, self.w = field, ((s + 1) / 2).tolist(), (w / 2).tolist()

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        out = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for s, w in zip(self.s, self.w, strict=True):
            out = out - w * (self.field(s * x, t, y) * x).flatten(1).sum(1)
        return out

    def energy_and_field(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self(x, t, y), self.field(x, t, y)


def has_energy(field: Field) -> bool:
    """Whether ``field`` is the negative gradient of a scalar energy it can evaluate: an :class:`EnergyField`, or a
    model marked ``has_energy`` whose ``energy(x, t=None, y=None)`` (shape (B,)) is the energy of ``field(x)``
    (EqM-E's :class:`~energen.networks.energy.ExplicitEnergy`, cd's ``ScalarEnergy``, DRL/CDRL's level 0)."""
    return isinstance(field, EnergyField) or bool(getattr(field, "has_energy", False))


def energy_source(field: Field) -> EnergyField | FieldEnergy:
    """Energy and field of ``field`` together (``energy_and_field``): by autograd when it has an energy
    (:func:`has_energy`), else the field with :class:`FieldEnergy`'s line integral of it."""
    if isinstance(field, EnergyField):
        return field
    if has_energy(field):
        return EnergyField(field.energy)
    return FieldEnergy(field)


GUIDANCE_RULES = ("all", "reference")


class GuidedField:
    r"""Classifier-free guidance: :math:`f = f(x, \varnothing) + w\,[f(x, y) - f(x, \varnothing)]`.

    ``w = 1`` is the plain conditional field, ``w = 0`` the unconditional one. The conditional and the
    unconditional evaluations share one batched call. The requested classes come in as ``y`` at call
    time (shape (B,)), so samplers that evaluate a subset of the batch pass the matching labels.

    Two rules (``rule``):

    - ``"all"``: every entry is guided, for every ``w`` (the standard rule).
    - ``"reference"``: the EqM (and DiT/SiT) reference code's rule: only channels 0-2 (dimension 1) are guided;
      the other channels keep the conditional output; and guidance applies only for ``w > 1`` (for ``w <= 1``
      the field is the plain conditional one). On 4-channel SD-VAE latents the last channel is unguided. It is
      the default of EqM runs on latents, so that converted checkpoints sample as the reference does.

    Args:
        field: a field trained with label dropout, where label ``null_label`` means "no class".
        scale: the guidance weight ``w``.
        null_label: the label standing for "unconditional".
        rule: ``"all"`` or ``"reference"``.
    """

    def __init__(self, field: Field, *, scale: float, null_label: int, rule: str = "all"):
        if rule not in GUIDANCE_RULES:
            raise ConfigError(f"guidance rule must be one of {', '.join(GUIDANCE_RULES)}, got {rule!r}")
        self.field, self.scale, self.null_label, self.rule = field, float(scale), int(null_label), rule

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("GuidedField needs the requested classes y")
        if self.scale == 1.0 or (self.rule == "reference" and self.scale <= 1.0):
            return self.field(x, t, y)
        null = torch.full_like(y, self.null_label)
        tt = None if t is None else torch.cat([t, t])
        cond, uncond = self.field(torch.cat([x, x]), tt, torch.cat([y, null])).chunk(2)
        if self.rule == "all":
            return uncond + self.scale * (cond - uncond)
        out = cond.clone()
        out[:, :3] = uncond[:, :3] + self.scale * (cond[:, :3] - uncond[:, :3])
        return out


class SumField:
    r"""Composition: :math:`f = \sum_i w_i f_i`, the field of the product of experts :math:`\prod_i p_i^{w_i}`."""

    def __init__(self, fields: Sequence[Field], weights: Sequence[float] | None = None):
        self.fields = list(fields)
        self.weights = [1.0] * len(self.fields) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.fields):
            raise ValueError("one weight per field")

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return sum(w * f(x, t, y) for w, f in zip(self.weights, self.fields, strict=True))


class TimeShift:
    r"""A time-conditioned field started at time :math:`t_0` instead of 0:
    :math:`g(x, s) = (1 - t_0)\, f(x, t_0 + (1 - t_0) s)`, so that integrating :math:`s` over [0, 1] integrates
    :math:`t` over :math:`[t_0, 1]` (flow matching from a partly noised input)."""

    def __init__(self, field: Field, t0: float):
        if not 0 <= t0 < 1:
            raise ValueError(f"t0 must be in [0, 1), got {t0}")
        self.field, self.t0 = field, float(t0)

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        s = torch.zeros(x.shape[0], device=x.device) if t is None else t
        return (1 - self.t0) * self.field(x, self.t0 + (1 - self.t0) * s, y)


class Reframed:
    r"""A field given in other coordinates :math:`u = a \odot z + b`, seen in the coordinates z:
    :math:`g(z) = a \odot f(a \odot z + b)` (the chain rule for the gradient of a log-density or an energy).
    Composes runs trained on data sets with different normalisations; ``a``, ``b`` broadcast against x."""

    def __init__(self, field: Field, a: Tensor, b: Tensor):
        self.field, self.a, self.b = field, a, b

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        a, b = self.a.to(x), self.b.to(x)
        return a * self.field(a * x + b, t, y)
