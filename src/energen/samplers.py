r"""Samplers: gradient descent, Nesterov-accelerated gradient descent, and ODE integration.

Every sampler takes any :class:`~energen.fields.Field` and moves points *along* it. For EqM the field is
the negative gradient of an implicit energy, so following it is gradient descent on that energy; for flow
matching it is a velocity, and gradient descent with ``step_size = 1/steps`` is exactly Euler integration.
Progress ``t_k = min(1, k * step_size)`` is passed to the field at every step: time-free models ignore it.

Adaptive compute (EqM paper): with ``tol`` set, a sample stops as soon as the RMS of the field at its
current point falls below ``tol`` (the field vanishes on the data manifold), and stopped samples cost no
more evaluations. ``SamplerOutput.steps`` reports the steps each sample used.

Randomness is injected: the optional annealed noise of :class:`GradientDescent` is drawn by a callable
``noise(idx) -> Tensor`` of shape (len(idx), ...) for the samples ``idx`` still moving. With
:class:`~energen.utils.PerSampleNoise` (as :meth:`energen.sampling.Run.sample` uses) a sample depends only
on its own seed, never on the batch it was drawn in.

Constraints (in-painting): the step samplers take ``constrain(x, idx, t) -> x``, applied to the points
``x = x_full[idx]`` after every step with their new progress ``t``; it holds known entries at observed
values (or, for flow matching, on their own path to them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import ConfigError
from .fields import EnergyField, Field, energy_source
from .registry import Registry
from .utils import expand_like, rms_flat

NoiseSource = Callable[[Tensor], Tensor]
"""``noise(idx) -> Tensor`` of shape (len(idx), ...): fresh standard normal noise for samples ``idx``."""
Constraint = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``constrain(x, idx, t) -> Tensor`` of x's shape: the points of samples ``idx`` made to obey a constraint."""


@dataclass
class SamplerOutput:
    """The result of a sampler.

    Attributes:
        x: shape (B, ...), final points.
        steps: shape (B,), steps (field evaluations for ODE solvers) each sample used.
        field_norm: shape (B,), RMS of the field at each sample's last evaluation.
        nfe: number of batched field evaluations.
        snapshots: ``{k: x after k steps}`` for the steps listed in ``record``.
    """

    x: Tensor
    steps: Tensor
    field_norm: Tensor
    nfe: int
    snapshots: dict[int, Tensor] = field(default_factory=dict)


def _as_labels(y: Tensor | None, n: int, device) -> Tensor | None:
    return None if y is None else y.to(device).expand(n) if y.dim() == 0 else y.to(device)


class GradientDescent:
    r""":math:`x_{k+1} = x_k + \eta\, f(x_k, t_k) + \sqrt{2\eta}\, T_k\, z_k`.

    Args:
        steps: maximum number of steps K.
        step_size: :math:`\eta`, a float or a tensor of shape (B,) giving each sample its own.
        tol: stop a sample once the RMS of its field is below ``tol`` (``None``: always K steps).
        noise: initial temperature :math:`T_0` of Langevin noise, annealed linearly to 0 over the K
            steps (0 disables it).
        anneal: anneal the temperature (``False``: constant ``noise``).
        record: step counts at which to keep a copy of x (for quality-versus-steps curves).
    """

    def __init__(self, *, steps: int, step_size: float | Tensor, tol: float | None = None, noise: float = 0.0,
                 anneal: bool = True, record: Sequence[int] = ()):  # fmt: skip
        positive = bool((torch.as_tensor(step_size) > 0).all())
        if steps < 1 or not positive or (tol is not None and not tol > 0) or noise < 0:
            raise ConfigError("sampler needs steps >= 1, step_size > 0, tol > 0 (or none) and noise >= 0")
        self.steps, self.tol, self.noise, self.anneal = int(steps), tol, float(noise), bool(anneal)
        self.step_size = step_size if isinstance(step_size, Tensor) else float(step_size)
        self.record = set(int(k) for k in record)

    def _project(self, x: Tensor) -> Tensor:
        """Applied to the points after every step (identity; Langevin may clamp to the data range)."""
        return x

    def _init_state(self, x: Tensor) -> dict:
        return {}

    def _direction(self, field: Field, x: Tensor, t: Tensor, y: Tensor | None, state: dict, idx: Tensor) -> Tensor:
        """The update direction for the points ``x = x_full[idx]``; subclasses keep per-sample state."""
        return field(x, t, y)

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        """Run from x0 (shape (B, ...)) with labels y (shape (B,) or None); ``noise`` and ``constrain`` as in
        the module doc (default noise: the global torch RNG)."""
        x = x0.clone()
        n = x.shape[0]
        y = _as_labels(y, n, x.device)
        steps = torch.zeros(n, dtype=torch.long, device=x.device)
        norm = torch.full((n,), math.inf, device=x.device)
        active = torch.arange(n, device=x.device)
        state = self._init_state(x)
        eta = torch.as_tensor(self.step_size, dtype=x.dtype, device=x.device).expand(n)  # per-sample step sizes
        snapshots, nfe = {}, 0
        for k in range(self.steps):
            if 0 in self.record and k == 0:
                snapshots[0] = x.clone()
            t = (k * eta[active]).clamp(max=1.0)
            xa = x[active]
            d = self._direction(field, xa, t, None if y is None else y[active], state, active)
            nfe += 1
            norm[active] = rms_flat(d).to(norm.dtype)
            if self.tol is not None:
                keep = norm[active] >= self.tol
                active, xa, d = active[keep], xa[keep], d[keep]
            ea = expand_like(eta[active], xa)
            xa = xa + ea * d
            if self.noise > 0 and len(active):
                temp = self.noise * (1 - k / self.steps) if self.anneal else self.noise
                z = noise(active) if noise is not None else torch.randn_like(xa)
                xa = xa + (2 * ea).sqrt() * temp * z.to(xa)
            xa = self._project(xa)
            if constrain is not None:
                xa = constrain(xa, active, ((k + 1) * eta[active]).clamp(max=1.0))
            x[active] = xa
            steps[active] += 1
            if k + 1 in self.record:
                snapshots[k + 1] = x.clone()
            if len(active) == 0:
                break
        for k in self.record:  # samples that all stopped early stay where they stopped
            if k <= self.steps and k not in snapshots:
                snapshots[k] = x.clone()
        return SamplerOutput(x=x, steps=steps, field_norm=norm, nfe=nfe, snapshots=snapshots)


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


class Langevin(GradientDescent):
    r"""Unadjusted Langevin dynamics on a field :math:`f = \nabla \log p = -\nabla E`:

    .. math::  x_{k+1} = x_k + \tfrac{s^2}{2} f(x_k) + T\, s\, z_k, \qquad z_k \sim \mathcal N(0, I)

    — gradient descent with :math:`\eta = s^2/2` and constant temperature, written once and used by
    recovery likelihood (each noise level its own ``s``), contrastive divergence and the downstream tasks.
    At ``temperature = 1`` and small ``s`` it samples :math:`p \propto e^{-E}`.

    Args:
        steps: K.
        step_size: :math:`s`, the standard deviation of each step's noise; a float or shape (B,).
        temperature: :math:`T` (1: exact Langevin; 0: gradient descent).
        grad_clip: clamp each element of the field to ``[-grad_clip, grad_clip]`` (IGEBM) or ``None``.
        clamp: ``(lo, hi)`` to clamp the points to after every step (the data range), or ``None``.
    """

    def __init__(self, *, steps: int, step_size: float | Tensor, temperature: float = 1.0,
                 grad_clip: float | None = None, clamp: tuple[float, float] | None = None,
                 tol: float | None = None, record: Sequence[int] = ()):  # fmt: skip
        if temperature < 0 or (grad_clip is not None and not grad_clip > 0):
            raise ConfigError("Langevin needs temperature >= 0 and grad_clip > 0 (or none)")
        eta = step_size**2 / 2
        super().__init__(steps=steps, step_size=eta, tol=tol, noise=temperature, anneal=False, record=record)
        self.grad_clip, self.clamp = grad_clip, clamp

    def _direction(self, field, x, t, y, state, idx):
        d = field(x, t, y)
        return d if self.grad_clip is None else d.clamp(-self.grad_clip, self.grad_clip)

    def _project(self, x: Tensor) -> Tensor:
        return x if self.clamp is None else x.clamp(*self.clamp)


def _sq(v: Tensor) -> Tensor:
    return v.pow(2).flatten(1).sum(1)


def _uniform(draw: NoiseSource, idx: Tensor, like: Tensor) -> Tensor:
    """One uniform per sample in ``idx``, from one more normal draw of its own noise stream (its first element
    through the normal CDF), so that a chain depends on its own stream only."""
    return 0.5 * (1 + torch.erf(draw(idx).to(like).flatten(1)[:, 0] / math.sqrt(2)))


def _mala_accepts(x: Tensor, xp: Tensor, z: Tensor, lp: Tensor, lpp: Tensor, gp: Tensor, eta: float,
                  u: Tensor) -> Tensor:  # fmt: skip
    r"""The Metropolis test of the Langevin proposal :math:`x' = x + \eta \nabla\log\pi(x) + s z`
    (:math:`\eta = s^2/2`): ``lp``, ``lpp`` are :math:`\log\pi` at :math:`x, x'`, ``gp`` its gradient at
    :math:`x'`, ``u`` the uniforms; returns the accepted mask."""
    return torch.log(u) < lpp - lp - _sq(x - xp - eta * gp) / (4 * eta) + _sq(z) / 2


class MetropolisLangevin:
    r"""Metropolis-adjusted Langevin (MALA) on a scalar energy: the Langevin proposal
    :math:`x' = x - \eta \nabla E(x) + s z` (:math:`\eta = s^2/2`), accepted with probability

    .. math::  \min\Big(1, \exp\big(E(x) - E(x') + \log q(x \mid x') - \log q(x' \mid x)\big)\Big),
        \qquad q(b \mid a) \propto \exp\big(-\lVert b - a + \eta \nabla E(a) \rVert^2 / (4\eta)\big).

    Its chains leave :math:`p \propto e^{-E}` invariant at any step size, where :class:`Langevin`'s carry a
    discretisation bias that grows with the energy's sharpness (an energy trained by contrastive divergence on
    biased chains learns to correct for the bias, with wells where chains under-visit). Unlike the field samplers
    it needs the energy itself, ``energy(x, t, y) -> (B,)``: methods that learn a field have none. One energy
    and gradient evaluation a step, as :class:`Langevin`. The acceptance test draws its uniform from one more
    normal draw of the noise source (its first element through the normal CDF), so a chain depends on its own
    noise stream only.

    Args:
        steps: K.
        step_size: :math:`s`, the standard deviation of each proposal's noise.
    """

    def __init__(self, *, steps: int, step_size: float):
        if steps < 1 or not step_size > 0:
            raise ConfigError("Metropolis-adjusted Langevin needs steps >= 1 and step_size > 0")
        self.steps, self.step_size = int(steps), float(step_size)
        self.acceptance = float("nan")  # mean acceptance rate of the last call

    @torch.no_grad()
    def __call__(self, energy, x0: Tensor, y: Tensor | None = None, *,
                 noise: NoiseSource | None = None) -> SamplerOutput:  # fmt: skip
        n, s = x0.shape[0], self.step_size
        eta = s * s / 2
        y = _as_labels(y, n, x0.device)
        idx = torch.arange(n, device=x0.device)
        draw = noise if noise is not None else (lambda i: torch.randn((len(i), *x0.shape[1:]), device=x0.device))

        field = EnergyField(energy)
        x = x0.clone()
        e, f = field.energy_and_field(x, None, y)  # f = -grad E = grad log pi
        accepted = torch.zeros(n, device=x0.device)
        for _ in range(self.steps):
            z = draw(idx).to(x)
            xp = x + eta * f + s * z
            ep, fp = field.energy_and_field(xp, None, y)
            take = _mala_accepts(x, xp, z, -e, -ep, fp, eta, _uniform(draw, idx, x))
            keep = expand_like(take, x)
            x, e, f = torch.where(keep, xp, x), torch.where(take, ep, e), torch.where(keep, fp, f)
            accepted += take.to(accepted)
        self.acceptance = float(accepted.mean()) / self.steps
        return SamplerOutput(x=x, steps=torch.full((n,), self.steps, dtype=torch.long, device=x.device),
                             field_norm=rms_flat(f), nfe=self.steps + 1)  # fmt: skip


class SequentialMonteCarlo:
    r"""Sequential Monte Carlo from a broad start distribution :math:`q` to :math:`p \propto e^{-E}` (annealed
    importance sampling with resampling): the batch is a population of particles on the geometric path

    .. math::  \pi_b(x) \propto q(x)^{1-b}\, e^{-b E(x)}, \qquad b_k = k / K.

    Each step reweights the particles by :math:`\pi_{b_{k+1}} / \pi_{b_k}` (the factor
    :math:`(e^{-E(x)} / q(x))^{1/K}`), resamples them (systematic resampling, within each class) when the effective
    sample size falls under half the population, and moves each by one Metropolis-adjusted Langevin step that
    leaves :math:`\pi_{b_{k+1}}` invariant; a last resampling makes the output unweighted. Where Langevin chains
    from noise settle in whichever mode is nearest and take a mode's basin for its weight, SMC weighs the modes by
    their mass under :math:`e^{-E}`: it samples the learned density itself, the better the larger the batch and
    the longer the path. The particles of a batch share their weights, so unlike the other samplers a sample
    depends on the others in its batch (``noise`` still fixes every draw).

    ``q`` is :math:`\mathcal N(0, I)`, the standard normal draw the samplers start from, or, with
    ``box = (lo, hi)``, uniform on the box (the start mapped through the normal CDF), and then the density is
    :math:`e^{-E}` on the box only: moves that leave it are rejected. An energy trained by contrastive divergence
    is trained only where its chains go; far from the data it may fall without bound (an improper density), and
    a uniform start reaches every part of the data's range, where a normal one leaves its corners to a few
    heavily weighted particles (checkerboard: its outer squares weigh up to 36 times its inner ones under
    :math:`q^{-1}`).

    It needs the energy: :func:`~energen.fields.energy_source` gives an energy model's own, and the line integral
    of any other field.

    Args:
        steps: K, the path's steps (one energy and gradient evaluation each, plus one).
        step_size: :math:`s`, the standard deviation of each Langevin proposal.
        box: ``(lo, hi)``, the support and uniform start, or ``None`` (all of space, a normal start).
    """

    def __init__(self, *, steps: int, step_size: float, box: tuple[float, float] | None = None,
                 record: Sequence[int] = ()):  # fmt: skip
        if steps < 1 or not step_size > 0 or (box is not None and not box[0] < box[1]):
            raise ConfigError("SMC needs steps >= 1, step_size > 0 and a box with lo < hi (or none)")
        self.steps, self.step_size, self.record = int(steps), float(step_size), set(int(k) for k in record)
        self.box = None if box is None else (float(box[0]), float(box[1]))
        self.acceptance = float("nan")  # mean Metropolis acceptance of the last call
        self.resamplings = 0  # resampling events of the last call
        self.ess_fraction = 0.5  # resample when the effective sample size falls under this fraction of a group

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        if constrain is not None:
            raise ConfigError("smc samples all of x from noise; in-painting needs a step sampler: gd, nag or langevin")
        n, s = x0.shape[0], self.step_size
        eta = s * s / 2
        y = _as_labels(y, n, x0.device)
        idx = torch.arange(n, device=x0.device)
        draw = noise if noise is not None else (lambda i: torch.randn((len(i), *x0.shape[1:]), device=x0.device))
        groups = [idx] if y is None else [idx[y == c] for c in torch.unique(y)]
        target = energy_source(field)

        def resample(state: list[Tensor], logw: Tensor, force: bool) -> None:
            for grp in groups:
                w = torch.softmax(logw[grp], 0)
                if not force and 1 / w.pow(2).sum() >= self.ess_fraction * len(grp):
                    continue
                u = (_uniform(draw, grp[:1], x0) + torch.arange(len(grp), device=x0.device)) / len(grp)
                anc = grp[torch.searchsorted(torch.cumsum(w, 0), u).clamp(max=len(grp) - 1)]
                for v in state:
                    v[grp] = v[anc]
                logw[grp] = 0.0
                self.resamplings += 1

        gauss = self.box is None  # q = N(0, I); else uniform on the box, constant

        def log_q(x: Tensor) -> Tensor:
            return -_sq(x) / 2 if gauss else torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)

        def log_pi(b: float, x: Tensor, e: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:  # log pi_b, its gradient
            return -b * e + (1 - b) * log_q(x), (b * f - (1 - b) * x) if gauss else b * f

        def outside(x: Tensor) -> Tensor:
            if gauss:
                return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            return ((x < self.box[0]) | (x > self.box[1])).flatten(1).any(1)

        lo, hi = self.box or (0.0, 1.0)
        x = x0.clone() if gauss else lo + (hi - lo) * 0.5 * (1 + torch.erf(x0 / math.sqrt(2)))  # uniform: normal CDF
        e, f = target.energy_and_field(x, None, y)  # f = -grad E
        logw = torch.zeros(n, device=x0.device, dtype=x0.dtype)
        snapshots, accepted, self.resamplings = {}, torch.zeros(n, device=x0.device), 0
        for k in range(self.steps):
            if 0 in self.record and k == 0:
                snapshots[0] = x.clone()
            b0, b1 = k / self.steps, (k + 1) / self.steps
            logw -= (b1 - b0) * (e + log_q(x))
            resample([x, e, f], logw, force=False)
            lp, g = log_pi(b1, x, e, f)
            z = draw(idx).to(x)
            xp = x + eta * g + s * z
            ep, fp = target.energy_and_field(xp, None, y)
            lpp, gp = log_pi(b1, xp, ep, fp)
            take = _mala_accepts(x, xp, z, lp, lpp, gp, eta, _uniform(draw, idx, x)) & ~outside(xp)
            keep = expand_like(take, x)
            x, e, f = torch.where(keep, xp, x), torch.where(take, ep, e), torch.where(keep, fp, f)
            accepted += take.to(accepted)
            if k + 1 in self.record:
                snapshots[k + 1] = x.clone()
        resample([x, e, f], logw, force=True)
        self.acceptance = float(accepted.mean()) / self.steps
        return SamplerOutput(x=x, steps=torch.full((n,), self.steps, dtype=torch.long, device=x.device),
                             field_norm=rms_flat(f), nfe=self.steps + 1,
                             snapshots=snapshots)  # fmt: skip


ODE_METHODS = ("euler", "midpoint", "heun2", "rk4", "dopri5", "bosh3", "adaptive_heun")


class ODESolver:
    r"""Integrate :math:`dx/ds = f(x, \min(s, 1))` for :math:`s \in [0, T]` with torchdiffeq.

    For flow matching ``T = 1`` integrates the velocity from noise to data. For EqM the field is a
    gradient and ``T`` plays the role of the total step budget :math:`\eta K` of gradient descent.

    Args:
        method: a torchdiffeq method; fixed-grid (``euler``, ``midpoint``, ``heun2``, ``rk4``) use ``steps``
            steps, adaptive ones (``dopri5``, ``bosh3``, ``adaptive_heun``) use ``rtol``/``atol``.
        steps: number of grid steps for fixed-grid methods.
        horizon: the integration length T.
    """

    def __init__(self, *, method: str = "heun2", steps: int = 50, horizon: float = 1.0, rtol: float = 1e-4,
                 atol: float = 1e-4):  # fmt: skip
        if method not in ODE_METHODS:
            raise ConfigError(f"unknown ODE method {method!r}; choose one of: {', '.join(ODE_METHODS)}")
        if steps < 1 or not horizon > 0:
            raise ConfigError("ODE solver needs steps >= 1 and horizon > 0")
        self.method, self.steps, self.horizon, self.rtol, self.atol = method, int(steps), float(horizon), rtol, atol

    @torch.no_grad()
    def __call__(self, field: Field, x0: Tensor, y: Tensor | None = None, *, noise: NoiseSource | None = None,
                 constrain: Constraint | None = None) -> SamplerOutput:  # fmt: skip
        """Integrate from x0; deterministic, so ``noise`` is unused."""
        from torchdiffeq import odeint

        if constrain is not None:
            raise ConfigError("constraints (in-painting) need a step sampler: gd, nag or langevin, not ode")

        n = x0.shape[0]
        y = _as_labels(y, n, x0.device)
        count = [0]

        def rhs(s: Tensor, x: Tensor) -> Tensor:
            count[0] += 1
            return field(x, torch.full((n,), float(min(s.item(), 1.0)), device=x.device), y)

        ts = torch.tensor([0.0, self.horizon], device=x0.device, dtype=x0.dtype)
        opts = {"step_size": self.horizon / self.steps} if self.method in ("euler", "midpoint", "heun2", "rk4") else {}
        xs = odeint(rhs, x0, ts, method=self.method, rtol=self.rtol, atol=self.atol, options=opts)
        x = xs[-1]
        norm = rms_flat(field(x, torch.ones(n, device=x.device), y))
        steps = torch.full((n,), count[0], dtype=torch.long, device=x.device)
        return SamplerOutput(x=x, steps=steps, field_norm=norm, nfe=count[0])


SAMPLERS: Registry = Registry("sampler")
SAMPLERS.add("gd", GradientDescent)
SAMPLERS.add("nag", Nesterov)
SAMPLERS.add("langevin", Langevin)
SAMPLERS.add("ode", ODESolver)
SAMPLERS.add("smc", SequentialMonteCarlo)
