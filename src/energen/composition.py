r"""Composition: a product of experts :math:`\prod_i p_i(x)^{w_i}` sampled by following the weighted sum of
the experts' fields (or, for energies, of :math:`-\nabla E_i`).

An expert is a run, optionally with a class (so several conditions of one run compose too). Runs trained
on data sets with different normalisations are brought into the first run's coordinates by
:class:`~energen.fields.Reframed`; all must share the data's shape. Samples follow the first run's default
sampler unless given another, 10x longer for gradient descent (:func:`default_settings`); a DRL/CDRL run
takes part through its level-0 field, with a field sampler.
Flow matching's time-dependent velocities do not add up to a product of experts, so it cannot take part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .errors import ConfigError
from .fields import Field, GuidedField, Reframed, SumField
from .samplers import SamplerOutput
from .sampling import Run, SamplerSettings

LONGER = 10  # gd/nag: the product's modes lie farther from the start than any expert's: 10x the step budget
# (EqM on two overlapping disks: 49% of composed samples in the overlap at the run's own 100 steps, 100% at 1,000)


def default_settings(frame: Run) -> SamplerSettings:
    """The sampler of a composition: the first run's, 10x longer for gradient descent; for a DRL/CDRL run
    Langevin on its level-0 energy."""
    s = frame.field_sampler("langevin")
    return replace(s, steps=s.steps * LONGER) if s.sampler in ("gd", "nag") else s


@dataclass
class Expert:
    run: Run
    label: int | None = None
    weight: float = 1.0

    def __str__(self) -> str:
        return f"{self.run.dir}" + ("" if self.label is None else f":{self.label}")


class _Conditioned:
    """A field with its own class (guided by ``scale``) whatever labels it is called with."""

    def __init__(self, run: Run, label: int, scale: float):
        self.run, self.label = run, label
        self.field = GuidedField(run.field, scale=scale, null_label=run.num_classes)

    def __call__(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return self.field(x, t, self.run.labels(self.label, x.shape[0]).to(x.device))


def expert_field(expert: Expert, frame: Run, cfg_scale: float = 1.0) -> Field:
    """The expert's field in the normalised coordinates of the run ``frame``."""
    run = expert.run
    if run.method.time_conditioned and not run.is_recovery:
        raise ConfigError(f"{run.dir}: method {run.cfg.method!r} learns a time-dependent velocity, which does not "
                          "compose as a product of experts; use eqm, eqm-e, drl, cdrl or cd runs")  # fmt: skip
    if run.info.shape != frame.info.shape:
        raise ConfigError(f"{run.dir}: data of shape {run.info.shape} do not compose with {frame.info.shape}")
    field = run.field if expert.label is None else _Conditioned(run, expert.label, cfg_scale)
    like = torch.zeros(1, *run.info.shape)
    (s1, c1), (si, ci) = frame.info.affine(like), run.info.affine(like)
    if torch.equal(s1, si) and torch.equal(c1, ci):
        return field
    return Reframed(field, c1 / ci, (s1 - si) / ci)  # u = (x - s_i) / c_i with x = c_1 z + s_1


def compose(experts: list[Expert], n: int, *, settings: SamplerSettings | None = None, seed: int = 0,
            cfg_scale: float = 1.0, batch_size: int = 1000) -> tuple[Tensor, SamplerOutput]:  # fmt: skip
    """``n`` samples of the product of ``experts`` in the first run's data coordinates, and the sampler's output."""
    if not experts:
        raise ConfigError("compose needs at least one expert")
    frame = experts[0].run
    if experts[0].label is not None:
        frame.labels(experts[0].label, 1)
    settings = settings or default_settings(frame)
    if settings.sampler == "recovery":
        settings = frame.field_sampler("langevin")
    field = SumField([expert_field(e, frame, cfg_scale) for e in experts], [e.weight for e in experts])
    z, out = frame.chains(n, seed=seed, settings=settings, field=field, batch_size=batch_size)
    return frame.info.denormalize(z), out
