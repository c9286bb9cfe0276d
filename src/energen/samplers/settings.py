"""A sampler choice and its hyper-parameters, as a run's ``sampler.json`` stores them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import ConfigError
from ..samplers.registry import SAMPLERS


@dataclass
class SamplerSettings:
    """A sampler choice and its hyper-parameters (what ``sampler.json`` stores as a run's default)."""

    sampler: str = "gd"
    steps: int = 100
    step_size: float = 0.005
    tol: float | None = None
    momentum: float = 0.3
    noise: float = 0.0
    ode_method: str = "heun2"
    temperature: float = 1.0  # langevin and recovery: the noise multiplier (1: exact Langevin)
    grad_clip: float | None = None  # langevin: per-element clip of the field (cd on images, as in training)
    clamp: list[float] | None = None  # langevin: (lo, hi) to clamp the points to; smc: the support (normalised)
    extra: dict = field(default_factory=dict)

    def build(self, record=()):
        """The sampler for a field (``recovery`` is built by :meth:`Run.sample`: it needs the model)."""
        if self.sampler == "recovery":
            raise ConfigError("sampler 'recovery' runs through the noise levels of a drl/cdrl run only")
        SAMPLERS.get(self.sampler)
        if self.sampler == "langevin":
            kw = dict(grad_clip=self.grad_clip, clamp=None if self.clamp is None else tuple(self.clamp))
            return SAMPLERS.get("langevin")(steps=self.steps, step_size=self.step_size, temperature=self.temperature,
                                            tol=self.tol, record=record, **kw)  # fmt: skip
        if self.sampler == "smc":
            box = None if self.clamp is None else tuple(self.clamp)
            return SAMPLERS.get("smc")(steps=self.steps, step_size=self.step_size, box=box, record=record)
        if self.sampler == "ode":
            return SAMPLERS.get("ode")(method=self.ode_method, steps=self.steps, horizon=self.steps * self.step_size)
        kw = dict(steps=self.steps, step_size=self.step_size, tol=self.tol, noise=self.noise, record=record)
        if self.sampler == "nag":
            kw["momentum"] = self.momentum
        return SAMPLERS.get(self.sampler)(**kw)

    def as_chain(self) -> SamplerSettings:
        """Settings that can start anywhere: ``smc`` (which starts from noise) becomes Langevin at its step size,
        others stay as they are (denoising, in-painting, translation and the buffer start chains elsewhere)."""
        return replace(self, sampler="langevin", temperature=1.0, clamp=None) if self.sampler == "smc" else self

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
