"""Loading a trained run and drawing samples from it.

:class:`Run` bundles what a run directory holds (config, data description, EMA model, default sampler
settings) and gives the model's field, its energy when it has one, and samples in data coordinates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

from .data.info import DataInfo
from .errors import CheckpointError, ConfigError
from .fields import Field, GuidedField, has_energy
from .methods import METHODS, Method, saved_config
from .samplers.base import SamplerOutput
from .samplers.registry import SAMPLERS
from .samplers.settings import SamplerSettings
from .training.checkpoint import load_export, load_resume, read_json
from .utils import PerSampleNoise


class Run:
    """A trained run loaded from its directory (EMA weights, eval mode, on ``device``)."""

    def __init__(self, run_dir: str | Path, device: str | torch.device = "cpu"):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise CheckpointError(f"run directory {str(self.dir)!r} does not exist")
        self.cfg = saved_config(self.dir)
        self.info = DataInfo.from_json(read_json(self.dir / "data.json"))
        self.method: Method = METHODS.get(self.cfg.method)
        self.num_classes = self.info.num_classes if self.cfg.conditional else 0
        self.device = torch.device(device)
        self.model = self.method.build_model(self.cfg, self.info.shape, self.num_classes)
        state = load_export(self.dir)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{self.dir / 'model.safetensors'}: weights do not match the run's config: "
                                  f"{str(e).splitlines()[0]}") from None  # fmt: skip
        self.model.to(self.device).eval().requires_grad_(False)
        path = self.dir / "sampler.json"
        self.uncalibrated = self.method.calibrates and self.cfg.calibrate and not path.exists()
        """Whether the run should have a calibrated default sampler but has none: its method chooses the budget on
        held-out data (EqM, EqM-E), it was trained with ``calibrate`` on, yet it has no ``sampler.json`` (the
        calibration was interrupted, or training has not finished). The default sampler is then the method's
        uncalibrated one and its first use warns on stderr, naming ``energen calibrate``. A run trained with
        ``--no-calibrate`` chose its uncalibrated default and is silent."""
        self._default_sampler = (SamplerSettings.from_json(read_json(path), where=str(path)) if path.exists()
                                 else self.method.default_sampler(self.cfg, self.info))  # fmt: skip
        self._warned = False
        self.guidance = self.method.guidance_rule(self.info)
        """The classifier-free guidance rule, "all" or "reference" (:class:`~energen.fields.GuidedField`)."""

    @property
    def default_sampler(self) -> SamplerSettings:
        """The run's own sampler settings: ``sampler.json``, else the method's default (see :attr:`uncalibrated`)."""
        if self.uncalibrated and not self._warned:
            self._warned = True
            s = self._default_sampler
            budget = f", {s.steps} steps of eta {s.step_size:g}" if getattr(s, "step_size", None) else ""
            print(f"energen: warning: {self.dir} has no sampler.json (its calibration was interrupted, or training "
                  f"has not finished): using the uncalibrated default {s.name}{budget}; run `energen calibrate "
                  f"{self.dir}` to choose the budget", file=sys.stderr)  # fmt: skip
        return self._default_sampler

    @property
    def field(self) -> Field:
        """The model's field ``f(x, t, y)`` in normalised coordinates."""
        return self.model

    @property
    def has_energy(self) -> bool:
        """Whether the model has a scalar energy (the model's own answer, :func:`energen.fields.has_energy`)."""
        return has_energy(self.model)

    @property
    def learns_velocity(self) -> bool:
        """A time-dependent velocity (flow matching): no energy, no equilibrium, no product of experts."""
        return self.method.learns_velocity

    @property
    def temperature(self) -> float:
        """The temperature T of the default sampler: Langevin at T samples exp(-E / T); 1 for samplers without
        one (smc samples exp(-E))."""
        return getattr(self.default_sampler, "temperature", 1.0)

    def needs_noise_level(self, settings: SamplerSettings) -> bool:
        """Whether ``settings`` start from a noise level (flow matching's time, the recovery sampler's level)
        rather than descending from any point, as the time-free methods (EqM, EqM-E, cd) do."""
        return self.method.needs_noise_level(settings)

    def energy(self, x: Tensor, y: Tensor | None = None, *, level: int = 0) -> Tensor:
        """The scalar energy of points in data coordinates, shape (B, ...) -> (B,), in normalised units.

        EqM-E and cd: their energy (``level`` must be 0). DRL/CDRL: the marginal energy of noise level ``level``
        (0: the data, up to the level-0 noise of std 0.0074), for x given in data coordinates.
        """
        z = self.info.normalize(x.to(self.device))
        with torch.no_grad():
            return self.method.energy(self.model, z, y, level)

    def buffer(self) -> Tensor:
        """The replay buffer of a cd run's latest resume state, shape (N, ...), normalised coordinates."""
        if not self.method.keeps_buffer:
            raise ConfigError(f"only cd runs keep a replay buffer, not {self.cfg.method!r}")
        if not (self.dir / "resume.json").exists():
            raise ConfigError(f"{self.dir} has no resume state, so no replay buffer")
        data = load_resume(self.dir).objective.get("data")
        if data is None or len(data) == 0:
            raise CheckpointError(f"{self.dir}: the resume state holds no replay buffer")
        return data

    def field_sampler(self, name: str | None = None) -> SamplerSettings:
        r"""Settings of the field sampler ``name`` on this run (``None``: the run's own sampler, able to start
        anywhere): the default switched to ``name``, keeping its steps and eta; on a drl/cdrl run, 100 steps of
        the level-0 energy's Langevin step :math:`\eta_0`."""
        return self.method.field_sampler(self.model, self.default_sampler, name)

    def switch_sampler(self, settings: SamplerSettings, name: str) -> SamplerSettings:
        """``settings`` switched to the sampler ``name``: the same options where both have them; to or from a
        sampler that walks a drl/cdrl run's noise levels, that family's own settings."""
        if name == settings.name:
            return settings
        if SAMPLERS.get(name).walks_levels:
            own = self.method.default_sampler(self.cfg, self.info)
            if not own.walks_levels:
                raise ConfigError(f"sampler {name!r} walks the noise levels of a drl or cdrl run, not of "
                                  f"{self.cfg.method!r}")  # fmt: skip
            return own
        if settings.walks_levels:
            return self.field_sampler(name)
        return settings.switch(name)

    def guided_field(self, scale: float) -> Field:
        if self.num_classes == 0:
            raise ConfigError("this run is unconditional; train with --conditional to sample a class")
        return GuidedField(self.field, scale=scale, null_label=self.num_classes, rule=self.guidance)

    def sample(self, n: int, *, seed: int = 0, settings: SamplerSettings | None = None, label: int | None = None,
               cfg_scale: float = 1.0, batch_size: int = 1000, record=(),
               start: str | Tensor = "noise") -> tuple[Tensor, SamplerOutput]:  # fmt: skip
        """Draw ``n`` samples; sample ``i`` uses the noise stream seeded ``seed + i`` (batch-size invariant).

        ``start``: ``"noise"`` (a standard normal draw), ``"buffer"`` (cd runs: chains start from points
        of the training replay buffer, drawn with replacement by a generator seeded ``seed``), or the starts
        themselves, shape (n, ...) in data coordinates (to reproduce or compare a trajectory).

        Returns samples in data coordinates, model layout, and the sampler outputs of all batches merged:
        ``steps`` and ``field_norm`` per sample, ``snapshots`` in data coordinates, and ``nfe`` summed
        over the batches of ``batch_size``.
        """
        x0 = None
        if isinstance(start, Tensor):
            if tuple(start.shape) != (n, *self.info.shape):
                raise ConfigError(f"{n} starts of shape {self.info.shape} needed, got shape {tuple(start.shape)}")
            x0 = self.info.normalize(start.float())
        elif start not in ("noise", "buffer"):
            raise ConfigError(f"start must be 'noise', 'buffer' or the starts themselves, got {start!r}")
        elif start == "buffer":
            buf = self.buffer()
            x0 = buf[torch.randint(0, len(buf), (n,), generator=torch.Generator().manual_seed(seed))]
        labels = None if label is None else self.labels(label, n)
        z, out = self.chains(n, x0=x0, seed=seed, settings=settings, labels=labels, cfg_scale=cfg_scale,
                             batch_size=batch_size, record=record)  # fmt: skip
        out.x = self.info.denormalize(z)
        out.snapshots = {k: self.info.denormalize(v) for k, v in out.snapshots.items()}
        return out.x, out

    def labels(self, label: int | Tensor, n: int) -> Tensor:
        """Class labels for ``n`` samples (shape (n,)), checked against the run's classes."""
        if self.num_classes == 0:
            raise ConfigError("this run is unconditional; train with --conditional to ask for a class")
        y = torch.as_tensor(label, dtype=torch.long).expand(n).clone()
        if ((y < 0) | (y >= self.num_classes)).any():
            raise ConfigError(f"class {int(y[(y < 0) | (y >= self.num_classes)][0])} is out of range: the run has "
                              f"{self.num_classes} classes")  # fmt: skip
        return y

    def chains(self, n: int, *, x0: Tensor | None = None, seed: int = 0, settings: SamplerSettings | None = None,
               labels: Tensor | None = None, cfg_scale: float = 1.0, field: Field | None = None,
               noise_std: float | None = None, known: tuple[Tensor, Tensor] | None = None, batch_size: int = 1000,
               record=()) -> tuple[Tensor, SamplerOutput]:  # fmt: skip
        r"""Run the sampler of ``settings`` (default: the run's) on ``n`` chains; everything in normalised units.

        Args:
            x0: shape (n, ...), the starts; ``None``: a standard normal draw, the first of each sample's noise
                stream (seeded ``seed + i``, as every later draw of that chain).
            labels: shape (n,) classes (guided by ``cfg_scale``), or ``None``.
            field: the field to follow instead of the run's own (composition); field samplers only.
            noise_std: the starts are data plus Gaussian noise of this std. Flow matching then starts at the
                time :math:`t_0 = 1/(1 + \sigma)` of its path and scales the start by :math:`t_0`; the recovery
                sampler starts at the noise level that holds that much noise; EqM and cd need no level and
                ignore it. ``None``: fm and recovery start from pure noise (generation).
            known: ``(mask, values)``, shape (n, ...) each: entries where mask is 1 stay at their values
                (in-painting); the others start from noise.

        Returns the final points and the merged :class:`SamplerOutput` (its ``x`` and snapshots normalised).
        """
        settings = settings or self.default_sampler
        if x0 is not None or known is not None or noise_std is not None:
            settings = settings.as_chain()  # smc starts from noise only
        recovery = settings.walks_levels
        if settings.needs_energy and self.learns_velocity:
            raise ConfigError(f"{settings.name} weighs samples by an energy; flow matching learns a velocity, which "
                              "has none")  # fmt: skip
        if recovery and field is not None:
            raise ConfigError("the recovery sampler walks one run's noise levels; compose with a field sampler "
                              "(--sampler gd, nag or langevin)")  # fmt: skip
        if known is not None and noise_std is not None:
            raise ConfigError("in-painting starts the unknown entries from noise; it takes no noise level")
        if noise_std is not None and not noise_std >= 0:
            raise ConfigError(f"the noise std must be >= 0, got {noise_std}")
        sampler = None if recovery else settings.build(record=record)
        xs, steps, norms, snaps, nfe = [], [], [], {}, 0
        for lo in range(0, n, batch_size):
            b = min(n, lo + batch_size) - lo
            noise = PerSampleNoise(range(seed + lo, seed + lo + b), self.info.shape, device=self.device)
            start = noise(range(b)) if x0 is None else x0[lo : lo + b].to(self.device)
            y = None if labels is None else labels[lo : lo + b].to(self.device)
            part = None if known is None else tuple(v[lo : lo + b].to(self.device) for v in known)
            if recovery:
                out = self.method.walk_levels(self.model, settings, start, y, noise=noise, cfg=self.cfg,
                                              cfg_scale=cfg_scale, null_label=self.num_classes, noise_std=noise_std,
                                              known=part)  # fmt: skip
            else:
                out = self._follow(sampler, start, y, noise, cfg_scale, field, noise_std, part)
            xs.append(out.x.cpu())
            steps.append(out.steps.cpu())
            norms.append(out.field_norm.cpu())
            nfe += out.nfe
            for k, v in out.snapshots.items():
                snaps.setdefault(k, []).append(v.cpu())
        merged = SamplerOutput(x=torch.cat(xs), steps=torch.cat(steps), field_norm=torch.cat(norms), nfe=nfe,
                               snapshots={k: torch.cat(v) for k, v in snaps.items()})  # fmt: skip
        return merged.x, merged

    def _follow(self, sampler, start, y, noise, cfg_scale, field, noise_std, known) -> SamplerOutput:
        """A field sampler from ``start`` (at the method's noise level of ``noise_std``), known entries held."""
        fld = field or (self.field if y is None else self.guided_field(cfg_scale))
        begun = self.method.start(fld, start, noise_std)
        if begun is None:  # nothing left to integrate
            return SamplerOutput(x=start, steps=torch.zeros(len(start), dtype=torch.long),
                                 field_norm=torch.zeros(len(start)), nfe=0)  # fmt: skip
        start, fld = begun
        constrain = None
        if known is not None:
            start, constrain = self.method.hold(known[0].bool(), known[1], start)
        return sampler(fld, start, y, noise=noise, constrain=constrain)
