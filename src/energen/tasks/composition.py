r"""Composition: a product of experts :math:`\prod_i p_i(x)^{w_i}` sampled by following the weighted sum of
the experts' fields (or, for energies, of :math:`-\nabla E_i`).

An expert is a run, optionally with a class (so several conditions of one run compose too, the run's
prior counted once: :class:`ClassProduct`). Runs trained
on data sets with different normalisations are brought into the first run's coordinates by
:class:`~energen.fields.Reframed`; all must share the data's shape. Samples follow the first run's default
sampler unless given another, with 10x its steps (:func:`default_settings`); a DRL/CDRL run
takes part through its level-0 field, with a field sampler.
Flow matching's time-dependent velocities do not add up to a product of experts, so it cannot take part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..errors import ConfigError
from ..fields import Field, Reframed, SumField
from ..run import Run
from ..samplers.base import SamplerOutput
from ..samplers.ode import ODESettings
from ..samplers.settings import SamplerSettings

LONGER = 10  # the product's modes lie farther from the start than any expert's: 10x the step budget. On two


def default_settings(frame: Run) -> SamplerSettings:
    """The sampler of a composition: the first run's (for a DRL/CDRL run Langevin on its level-0 energy) with
    10x its steps at the same step size (ODE integration keeps its budget)."""
    s = frame.field_sampler()
    return s if isinstance(s, ODESettings) else replace(s, steps=s.steps * LONGER)


@dataclass
class Expert:
    run: Run
    label: int | None = None
    weight: float = 1.0

    def __str__(self) -> str:
        return f"{self.run.dir}" + ("" if self.label is None else f":{self.label}")


class ClassProduct:
    r"""Several classes of one run, composed as in composable diffusion and CDRL's compositional generation:
    :math:`f = w_0 f(x, \varnothing) + \sum_i w_i\,[f(x, c_i) - f(x, \varnothing)]`, the field of
    :math:`p(x)^{w_0} \prod_i p(c_i \mid x)^{w_i}`: the run's prior counted once (a naive sum of the class
    fields would count it once per class). All evaluations share one batched call."""

    def __init__(self, run: Run, labels: list[int], weights: list[float], prior: float = 1.0):
        self.run, self.weights, self.prior = run, [float(w) for w in weights], float(prior)
        self.labels = [run.num_classes] + [int(c) for c in labels]  # the null label first
        for c in labels:
            run.labels(c, 1)

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        n = x.shape[0]
        ys = torch.tensor(self.labels, device=x.device).repeat_interleave(n)
        tt = None if t is None else t.repeat(len(self.labels))
        f = self.run.field(x.repeat(len(self.labels), *[1] * (x.dim() - 1)), tt, ys).chunk(len(self.labels))
        return self.prior * f[0] + sum(w * (fc - f[0]) for w, fc in zip(self.weights, f[1:], strict=True))


def _check(run: Run, frame: Run) -> None:
    if run.learns_velocity:
        raise ConfigError(f"{run.dir}: method {run.cfg.method!r} learns a time-dependent velocity, which does not "
                          "compose as a product of experts; use eqm, eqm-e, drl, cdrl or cd runs")  # fmt: skip
    if run.info.shape != frame.info.shape:
        raise ConfigError(f"{run.dir}: data of shape {run.info.shape} do not compose with {frame.info.shape}")


def _in_frame(field: Field, run: Run, frame: Run) -> Field:
    """``field`` of ``run`` seen in the normalised coordinates of the run ``frame``."""
    like = torch.zeros(1, *run.info.shape)
    (s1, c1), (si, ci) = frame.info.affine(like), run.info.affine(like)
    if torch.equal(s1, si) and torch.equal(c1, ci):
        return field
    return Reframed(field, c1 / ci, (s1 - si) / ci)  # u = (x - s_i) / c_i with x = c_1 z + s_1


def product_field(experts: list[Expert], frame: Run) -> Field:
    """The field of the product of ``experts`` in the coordinates of ``frame``.

    Experts are grouped by run (its directory). A run's unconditional experts add ``weight * f(x)``; its
    class experts combine by :class:`ClassProduct`, whose prior weight is the sum of the run's unconditional
    weights, or 1 if it has none.
    """
    groups: dict[str, list[Expert]] = {}
    for e in experts:
        _check(e.run, frame)
        groups.setdefault(str(e.run.dir.resolve()), []).append(e)
    fields, weights = [], []
    for group in groups.values():
        run = group[0].run
        plain = [e.weight for e in group if e.label is None]
        classes = [e for e in group if e.label is not None]
        if classes:
            prior = sum(plain) if plain else 1.0
            field = ClassProduct(run, [e.label for e in classes], [e.weight for e in classes], prior)
            fields.append(_in_frame(field, run, frame))
            weights.append(1.0)
        else:
            fields.append(_in_frame(run.field, run, frame))
            weights.append(sum(plain))
    return SumField(fields, weights)


def compose(experts: list[Expert], n: int, *, settings: SamplerSettings | None = None, seed: int = 0,
            batch_size: int = 1000) -> tuple[Tensor, SamplerOutput]:  # fmt: skip
    """``n`` samples of the product of ``experts`` in the first run's data coordinates, and the sampler's output."""
    if not experts:
        raise ConfigError("compose needs at least one expert")
    frame = experts[0].run
    settings = settings or default_settings(frame)
    if settings.walks_levels:
        settings = frame.field_sampler()
    z, out = frame.chains(n, seed=seed, settings=settings, field=product_field(experts, frame), batch_size=batch_size)
    return frame.info.denormalize(z), out
