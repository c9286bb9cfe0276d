r"""Typed sampler settings: one frozen dataclass per sampler, registered with it in :data:`SAMPLERS`.

A settings object names a sampler and holds exactly the options that sampler uses, so an option it does not use
cannot be set by accident (:meth:`SamplerSettings.with_options` refuses it with one line). It is what a run's
``sampler.json`` stores as its default sampler, and :meth:`SamplerSettings.build` makes the sampler.

**One step unit.** ``step_size`` is :math:`\eta` for every sampler: gradient descent moves
:math:`x \leftarrow x + \eta f(x)`, Langevin :math:`x \leftarrow x + \eta f(x) + \sqrt{2\eta T}\,z`, and MALA and
SMC propose with the same :math:`\eta`. The total "time" of a step sampler is :math:`\eta K`. Files written before
this unit (format 1) stored :math:`s = \sqrt{2\eta}` for ``langevin`` and ``smc`` and a noise multiplier
:math:`\sqrt T` as the Langevin temperature; :meth:`SamplerSettings.from_json` migrates them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import CheckpointError, ConfigError
from ..utils import is_finite_number, is_integer
from .registry import SAMPLERS

FORMAT = 2  # sampler.json: 2 = step_size is eta for every sampler; 1 (no "format" key) = s for langevin and smc


@dataclass(frozen=True)
class SamplerSettings:
    """Options every sampler has: the step count K. Subclasses add their own and set :attr:`name`."""

    name: ClassVar[str] = ""
    walks_levels: ClassVar[bool] = False  # runs through a recovery model's noise levels, not along a field
    starts_from_noise: ClassVar[bool] = False  # can only start from its own noise draw (no x0, no constraints)
    needs_energy: ClassVar[bool] = False  # weighs points by an energy (a velocity field has none)
    keeps_time: ClassVar[bool] = True  # a new step count keeps the total time eta K (smc: a path at one eta)

    steps: int = 100
    extra: dict = field(default_factory=dict, compare=False, repr=False)  # records kept beside (calibration grid)

    def __post_init__(self):
        if not self.steps >= 1:
            raise ConfigError(f"{self.name}: steps must be >= 1, got {self.steps}")
        if getattr(self, "step_size", 1.0) is not None and not getattr(self, "step_size", 1.0) > 0:
            raise ConfigError(f"{self.name}: step size eta must be > 0, got {self.step_size}")

    @property
    def sampler(self) -> str:
        """The sampler's registered name."""
        return self.name

    @classmethod
    def options(cls) -> list[str]:
        """The options this sampler takes (its fields, without the bookkeeping ``extra``)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    def build(self, record=()):
        """The sampler these settings describe; ``record``: step counts at which to keep snapshots."""
        raise NotImplementedError

    def with_options(self, **changes: Any) -> SamplerSettings:
        """These settings with ``changes``; an option this sampler does not take is refused (one line)."""
        for k in changes:
            if k not in self.options():
                users = [n for n in SAMPLERS.names() if k in SAMPLERS.get(n).options()]
                raise ConfigError(f"--{k.replace('_', '-')}: sampler {self.name!r} does not use it "
                                  f"(used by: {', '.join(users) or 'no sampler'})")  # fmt: skip
        return dataclasses.replace(self, **changes)

    def switch(self, name: str) -> SamplerSettings:
        """Settings of sampler ``name`` that keep the options both samplers share (steps, the step size eta)."""
        cls = SAMPLERS.get(name)
        if cls is type(self):
            return self
        kept = {k: getattr(self, k) for k in cls.options() if k in self.options()}
        return cls(**kept)

    def as_chain(self) -> SamplerSettings:
        """Settings that can start anywhere (denoising, in-painting, translation and the buffer start chains at
        given points): these settings, or Langevin at the same eta for a sampler that starts from noise only."""
        return self

    def to_json(self) -> dict:
        return (
            {"sampler": self.name, "format": FORMAT}
            | {k: getattr(self, k) for k in self.options()}
            | ({"extra": self.extra} if self.extra else {})
        )

    @staticmethod
    def from_json(d: dict, *, where: str = "sampler.json") -> SamplerSettings:
        """Settings from their JSON form; format-1 files (one 11-field record for every sampler, ``step_size``
        :math:`s = \\sqrt{2\\eta}` and ``temperature`` a noise multiplier for langevin and smc) are migrated.
        Every option's type and range is checked: a hand-edited or corrupt file is a :class:`CheckpointError`
        naming ``where`` and the option."""
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: not a mapping of sampler options")
        d = dict(d)
        name, fmt = d.pop("sampler", "gd"), d.pop("format", 1)
        if not isinstance(name, str):
            raise CheckpointError(f"{where}: sampler must be a sampler name, got {name!r}")
        if isinstance(fmt, bool) or fmt not in (1, FORMAT):
            raise CheckpointError(f"{where}: format must be 1 or {FORMAT}, got {fmt!r}")
        try:
            cls = SAMPLERS.get(name)
        except ConfigError as e:
            raise CheckpointError(f"{where}: {e}") from None
        _check_options(d, where, none_ok=True)  # types first, so that migrating cannot fail
        if fmt == 1:
            d = _migrate_format_1(cls, d)
        unknown = sorted(set(d) - set(cls.options()) - {"extra"})
        if unknown:
            raise CheckpointError(f"{where}: sampler {name!r} takes no option(s) {', '.join(unknown)}")
        _check_options(d, where, none_ok=False)
        for k in ("clamp", "box"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        try:
            return cls(**d)
        except ConfigError as e:
            raise CheckpointError(f"{where}: {e}") from None


def _interval(v) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(map(is_finite_number, v)) and v[0] < v[1]


# option -> (may be None, test, what the test asks); the ranges the samplers themselves check when built
_OPTION_RULES = {
    "steps": (False, lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "step_size": (False, lambda v: is_finite_number(v) and v > 0, "a number > 0"),
    "temperature": (False, lambda v: is_finite_number(v) and v >= 0, "a number >= 0"),
    "noise": (False, lambda v: is_finite_number(v) and v >= 0, "a number >= 0"),
    "momentum": (False, lambda v: is_finite_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "tol": (True, lambda v: is_finite_number(v) and v > 0, "a number > 0 or null"),
    "grad_clip": (True, lambda v: is_finite_number(v) and v > 0, "a number > 0 or null"),
    "clamp": (True, _interval, "null or a pair [lo, hi] of numbers with lo < hi"),
    "box": (True, _interval, "null or a pair [lo, hi] of numbers with lo < hi"),
    "ode_method": (False, lambda v: isinstance(v, str), "a method name"),
    "extra": (False, lambda v: isinstance(v, dict), "an object"),
}


def _check_options(d: dict, where: str, *, none_ok: bool) -> None:
    """Refuse an option of the wrong type or out of range (``none_ok``: also accept null, as format 1 stored
    options a sampler did not take)."""
    for k, v in d.items():
        if k not in _OPTION_RULES:
            continue
        optional, test, what = _OPTION_RULES[k]
        if v is None and (optional or none_ok):
            continue
        if v is None or not test(v):
            raise CheckpointError(f"{where}: {k} must be {what}, got {v!r}")


def _migrate_format_1(cls: type[SamplerSettings], d: dict) -> dict:
    """Format 1 stored all eleven options for every sampler; keep the ones ``cls`` takes, in its units."""
    if cls.name in ("langevin", "smc") and d.get("step_size") is not None:
        d["step_size"] = d["step_size"] ** 2 / 2  # s -> eta = s^2 / 2
    if cls.name in ("langevin", "recovery") and d.get("temperature") is not None:
        d["temperature"] = d["temperature"] ** 2  # noise multiplier tau -> temperature T = tau^2
    if cls.name == "smc":
        d["box"] = d.get("clamp")
    return {k: v for k, v in d.items() if k in cls.options() or k == "extra"}


def sampler_settings(name: str, **options: Any) -> SamplerSettings:
    """Settings of the sampler registered as ``name``; an option it does not take is refused."""
    cls = SAMPLERS.get(name)
    return cls().with_options(**options) if options else cls()
