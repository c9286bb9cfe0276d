r"""Diffusion recovery likelihood: DRL (Gao et al., 2021) and Cooperative DRL (CDRL, Zhu et al., 2024).

One energy network, conditioned on the noise level, models every level :math:`x_0, \dots, x_{T-1}` of a
variance-preserving diffusion :math:`x_t = \sqrt{\bar a_t}\, x + \bar\sigma_t \varepsilon`. Level ``i`` is
learned by *recovery likelihood*: the conditional density of :math:`\tilde y = \alpha_{i+1} x_i` given the
noisier :math:`x_{i+1}`,

.. math::  \log p(\tilde y \mid x_{i+1}) = h(\tilde y, i) / s_i^2 - \| \tilde y - x_{i+1} \|^2 / (2\sigma_{i+1}^2) + C,

is close to unimodal, so a short Langevin chain samples it. The network output :math:`h = s_i^2 f` is the
log-density scaled by the level's Langevin step :math:`s_i^2` (both reference codes; their "Appendix A.2"):
the drift of a Langevin step then has coefficient 1/2 at every level. The top level ``T-1`` is an
ordinary marginal EBM (no quadratic term, :math:`\alpha = 1`), started from :math:`x_T \approx N(0, I)`.

CDRL adds an *initializer* :math:`\mu_\phi(x_{i+1}) = x_{i+1} + \mathrm{net}(x_{i+1})` (zero-initialised
residual, so it starts as DRL) that proposes each chain's start, and is trained to regress onto the
chain's end (stop-gradient, the same start noise): it learns to absorb the MCMC displacement. CDRL also
pairs :math:`x_i` and :math:`x_{i+1}` through one shared :math:`\varepsilon` (noise-variance reduction;
both marginals stay exact) and uses the cosine-logSNR schedule. Facts and numbers: spec ``cdrl_igebm.md``
part A; where this module departs from the reference code it says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .fields import EnergyField
from .objectives import LossOutput, drop_labels
from .samplers import Langevin, NoiseSource, SamplerOutput
from .utils import expand_like, rms_flat, sum_flat

MAX_CHAIN_MOVE = 10.0  # RMS displacement of a chain, in data standard deviations, beyond which it has blown up
LOGSNR_MAX, LOGSNR_MIN = 9.8, -5.1  # CDRL's endpoints: level 0 sigma_bar = 0.0074, level T sigma_bar = 0.997


def cosine_logsnr(u: Tensor, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> Tensor:
    r""":math:`\lambda(u) = -2 \log \tan(a u + b)`, :math:`u \in [0, 1]`, from ``logsnr_max`` to ``logsnr_min``."""
    b = math.atan(math.exp(-logsnr_max / 2))
    a = math.atan(math.exp(-logsnr_min / 2)) - b
    return -2 * torch.log(torch.tan(a * u + b))


class NoiseLevels(nn.Module):
    r"""The per-level constants of recovery likelihood (buffers, float64 math, stored float32).

    Levels ``t = 0..T`` with logSNR :math:`\lambda_t`; recovery level ``i = 0..T-1`` models :math:`x_i`
    given :math:`x_{i+1}`. Tensors indexed by recovery level (length T):

    - ``alpha``: :math:`\alpha_{i+1} = \sqrt{\bar a_{i+1}/\bar a_i}` (1 at the top level), ``y = alpha * x_i``;
    - ``alpha_true``: the same without the top-level override (to draw unpaired pairs);
    - ``sigma``: :math:`\sigma_{i+1} = \sqrt{1 - \alpha_{i+1}^2}`, the std of one forward step;
    - ``step``: Langevin :math:`s_i = \sqrt{b^2 c_i}\, \sigma_{i+1}` with :math:`c_i = \bar\sigma_i / \bar\sigma_0`
      (images) or the constant :math:`1/\bar\sigma_0` (the reference's 2-D toy);
    - ``weight``: the loss weight :math:`w_i = \sigma_1 / \sigma_{i+1}`;
    - ``init_std``: the initializer's noise :math:`\sqrt{\tilde\beta_i}\, \alpha_{i+1}`, DDPM's posterior std;
    - ``t_ebm``, ``t_init``: the networks' time inputs :math:`\arctan(e^{-\lambda/2}) / (\pi/2)` of level i
      (the EBM, the level it models) and of level i+1 (the initializer, the level it reads).
    Level-indexed (length T+1): ``abar`` and ``sigma_bar``.
    """

    def __init__(self, levels: int = 6, *, b2: float = 4e-4, constant_c: bool = False):
        super().__init__()
        self.levels, self.b2, self.constant_c = int(levels), float(b2), bool(constant_c)
        lam = cosine_logsnr(torch.linspace(0, 1, levels + 1, dtype=torch.float64))
        abar = torch.sigmoid(lam)
        sbar = (1 - abar).sqrt()
        alpha_true = (abar[1:] / abar[:-1]).sqrt()
        sigma = (1 - alpha_true**2).sqrt()
        alpha = alpha_true.clone()
        alpha[-1] = 1.0
        c = torch.full_like(sigma, 1 / sbar[0]) if constant_c else sbar[:-1] / sbar[0]
        beta_tilde = (1 - abar[:-1]) / (1 - abar[1:]) * sigma**2
        time = torch.atan(torch.exp(-lam / 2)) / (math.pi / 2)
        values = {
            "logsnr": lam, "abar": abar, "sigma_bar": sbar, "alpha": alpha, "alpha_true": alpha_true,
            "sigma": sigma, "step": (b2 * c).sqrt() * sigma, "weight": sigma[0] / sigma,
            "init_std": beta_tilde.sqrt() * alpha, "t_ebm": time[:-1], "t_init": time[1:],
        }  # fmt: skip
        for k, v in values.items():
            self.register_buffer(k, v.float(), persistent=False)

    def is_top(self, i: Tensor) -> Tensor:
        return i == self.levels - 1

    def level_of_noise(self, std: float) -> tuple[int, float]:
        r"""Where points :math:`x + \text{std}\,\varepsilon` (in the model's units) join the ladder.

        Returns the lowest level :math:`t \ge 1` whose noise-to-signal ratio :math:`\bar\sigma_t/\sqrt{\bar a_t}`
        reaches ``std`` (T if none does), and the std of the extra noise that makes
        :math:`\sqrt{\bar a_t}\,(x + \text{std}\,\varepsilon)` exactly a point of level t.
        """
        ratio = (self.sigma_bar / self.abar.sqrt()).tolist()
        t = next((i for i in range(1, self.levels + 1) if ratio[i] >= std), self.levels)
        extra = float(self.sigma_bar[t]) ** 2 - float(self.abar[t]) * std**2
        return t, math.sqrt(max(extra, 0.0))


class RecoveryModel(nn.Module):
    r"""The energy network :math:`h(\tilde y, i, y)` of every level, and CDRL's initializer (or ``None``).

    ``forward(x, t, y)`` is the field protocol: :math:`\nabla_x \log p_0(x) = -\nabla E_0`, the level-0 field,
    so the shared samplers (gd, nag, ode, langevin) run on a recovery-likelihood model too.
    """

    def __init__(self, ebm: nn.Module, initializer: nn.Module | None, levels: NoiseLevels, data_scale: float = 1.0):
        super().__init__()
        self.ebm, self.initializer, self.levels = ebm, initializer, levels
        self.data_scale = float(data_scale)  # the diffusion runs on data_scale * (normalised data)

    def h(self, y_tilde: Tensor, i: Tensor, y: Tensor | None = None) -> Tensor:
        """The network output, shape (B,), for scaled points ``y_tilde`` of levels ``i`` (shape (B,))."""
        return self.ebm(y_tilde, self.levels.t_ebm[i], y)

    def energy(self, x: Tensor, i: Tensor | int = 0, y: Tensor | None = None) -> Tensor:
        r"""The marginal energy :math:`E_i(x) = -f(\alpha_{i+1} x, i) = -h / s_i^2` of points x of level i.

        ``x`` is in normalised data units (the model scales it by ``data_scale``)."""
        i = self._levels(i, x)
        lv = self.levels
        return -self.h(expand_like(lv.alpha[i], x) * x * self.data_scale, i, y) / lv.step[i] ** 2

    def conditional_energy(self, y_tilde: Tensor, x_next: Tensor, i: Tensor, y: Tensor | None = None,
                           h: Callable | None = None) -> Tensor:  # fmt: skip
        r""":math:`-h(\tilde y, i)/s_i^2 + \|\tilde y - x_{i+1}\|^2 / (2\sigma_{i+1}^2)`; no quadratic at the top.

        ``h`` replaces :meth:`h` (e.g. a guided combination); the quadratic term is never guided.
        """
        lv = self.levels
        quad = sum_flat((y_tilde - x_next) ** 2) / (2 * lv.sigma[i] ** 2)
        quad = torch.where(lv.is_top(i), torch.zeros_like(quad), quad)
        return -(h or self.h)(y_tilde, i, y) / lv.step[i] ** 2 + quad

    def propose(self, x_next: Tensor, i: Tensor, y: Tensor | None = None) -> Tensor:
        """The chain's start in ``y_tilde`` units, before noise: the initializer's mean (CDRL) or x_{i+1} (DRL)."""
        if self.initializer is None:
            return x_next
        return self.initializer(x_next, self.levels.t_init[i], y)

    def _levels(self, i: Tensor | int, x: Tensor) -> Tensor:
        if isinstance(i, int):
            return torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        return i

    def forward(self, x: Tensor, t: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        return EnergyField(lambda v, _t, c: self.energy(v, 0, c))(x, t, y)


class Initializer(nn.Module):
    r""":math:`\mu(x) = x + \mathrm{net}(x, t, y)` with the net's last layer zero-initialised (identity at start)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        nn.init.zeros_(net.output_layer.weight)
        nn.init.zeros_(net.output_layer.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        return x + self.net(x, t, y)


class RecoveryLikelihood:
    r"""The DRL / CDRL training loss, per sample.

    Each sample draws its own recovery level i uniformly; the positive is :math:`\tilde y^+ = \alpha x_i`
    from data, the negative :math:`\tilde y^-` the end of K Langevin steps on the conditional energy from the
    proposal. Per sample: :math:`w_i\,[h(\tilde y^-) - h(\tilde y^+)]` (raise h on data, lower it on samples),
    plus, for CDRL, the initializer's :math:`\|\mathrm{sg}(\tilde y^-) - \tilde y^0\|^2` (summed over
    dimensions, as the reference). The two terms touch disjoint parameters, so one backward trains both.

    Args:
        langevin_steps: K per level during training.
        pairing: CDRL's noise-variance reduction: :math:`x_i, x_{i+1}` share one :math:`\varepsilon`
            (otherwise :math:`x_{i+1} = \alpha x_i + \sigma \varepsilon'`, as DRL).
        label_dropout, num_classes: classifier-free guidance training (label ``num_classes`` is "none").
    """

    def __init__(self, *, langevin_steps: int, pairing: bool, label_dropout: float = 0.1, num_classes: int = 0):
        self.langevin_steps, self.pairing = int(langevin_steps), bool(pairing)
        self.label_dropout, self.num_classes = label_dropout, num_classes

    def __call__(self, model: RecoveryModel, x: Tensor, y: Tensor | None, generator: torch.Generator) -> LossOutput:
        lv = model.levels
        n, dev = x.shape[0], x.device
        x = x * model.data_scale

        def randn() -> Tensor:
            return torch.randn(x.shape, generator=generator).to(dev)

        i = torch.randint(0, lv.levels, (n,), generator=generator).to(dev)
        eps = randn()
        x_i = expand_like(lv.abar[i].sqrt(), x) * x + expand_like(lv.sigma_bar[i], x) * eps
        if self.pairing:
            x_next = expand_like(lv.abar[i + 1].sqrt(), x) * x + expand_like(lv.sigma_bar[i + 1], x) * eps
        else:
            x_next = expand_like(lv.alpha_true[i], x) * x_i + expand_like(lv.sigma[i], x) * randn()
        y = drop_labels(y, self.label_dropout, self.num_classes, generator)
        y_pos = expand_like(lv.alpha[i], x) * x_i
        y0 = model.propose(x_next, i, y)
        if model.initializer is not None:
            y0 = y0 + expand_like(lv.init_std[i], x) * randn()
        field = EnergyField(lambda v, _t, c: model.conditional_energy(v, x_next, i, c))
        chain = Langevin(steps=self.langevin_steps, step_size=lv.step[i])
        y_neg = chain(
            field, y0.detach(), y, noise=lambda idx: torch.randn((len(idx), *x.shape[1:]), generator=generator).to(dev)
        ).x
        h_pos, h_neg = model.h(torch.cat([y_pos, y_neg]), torch.cat([i, i]),
                               None if y is None else torch.cat([y, y])).float().chunk(2)  # fmt: skip
        per_sample = lv.weight[i] * (h_neg - h_pos)
        stats = {"h_gap": (h_pos - h_neg).mean().item(),
                 "langevin_move": rms_flat(y_neg - y0.detach()).mean().item() / model.data_scale}  # fmt: skip
        if model.initializer is not None:
            init_loss = sum_flat((y_neg.detach() - y0) ** 2)
            per_sample = per_sample + init_loss
            stats["init_loss"] = init_loss.mean().item()
        problem = None
        if not stats["langevin_move"] <= MAX_CHAIN_MOVE:  # also catches NaN
            problem = (f"the Langevin chains blew up (RMS move {stats['langevin_move']:.3g} data standard "
                       "deviations); lower --langevin-b2 or --lr")  # fmt: skip
        return LossOutput(per_sample=per_sample, stats=stats, problem=problem)


class AncestralSampler:
    r"""Sampling from pure noise through all levels (Algorithm 2 of CDRL), then one Tweedie step.

    For ``i = T-1 .. 0``: propose from :math:`x_{i+1}` (initializer mean + its noise, or :math:`x_{i+1}` for
    DRL), run K Langevin steps on the conditional energy, divide by :math:`\alpha_{i+1}`. Finally
    :math:`\hat x = (x_0 + \bar\sigma_0^2 \nabla \log p_0(x_0)) / \sqrt{\bar a_0}` (the reference code over-scales
    this score by 2, harmless at :math:`\bar\sigma_0^2 = 5.5\cdot10^{-5}`; we do not copy that).

    Fewer steps than in training keep the Langevin "time" :math:`K s^2` constant: :math:`s_K = s\sqrt{K_{train}/K}`
    (the paper's step size :math:`\propto 1/\sqrt{K}`). Classifier-free guidance acts on both networks with
    one weight w (ours: 1 = plain conditional, i.e. the paper's :math:`1 + w`):
    :math:`h_w = h_\varnothing + w (h_c - h_\varnothing)` and
    :math:`\mu_w = \mu_\varnothing + w (\mu_c - \mu_\varnothing)`.

    Two uses beyond generation: ``start_level`` starts the ladder from a noisy input :math:`x_t` of level t
    (denoising, translation), and ``known = (mask, values)`` holds the entries where ``mask`` is 1 at the
    observed values, noised to each level as it is reached (in-painting, as RePaint's single pass).
    """

    def __init__(self, model: RecoveryModel, *, langevin_steps: int, train_steps: int, temperature: float = 1.0,
                 cfg_scale: float = 1.0, null_label: int | None = None, denoise: bool = True):  # fmt: skip
        self.model, self.k, self.k_train = model, int(langevin_steps), int(train_steps)
        self.temperature, self.w, self.null, self.denoise = float(temperature), float(cfg_scale), null_label, denoise

    def _guided(self, fn, y: Tensor | None):
        if y is None or self.w == 1.0:
            return fn
        null = torch.full_like(y, self.null)

        def g(v: Tensor, i: Tensor, _y=None) -> Tensor:
            c, u = fn(torch.cat([v, v]), torch.cat([i, i]), torch.cat([y, null])).chunk(2)
            return u + self.w * (c - u)

        return g

    @torch.no_grad()
    def __call__(self, x_top: Tensor, y: Tensor | None = None, *, noise: NoiseSource, start_level: int | None = None,
                 known: tuple[Tensor, Tensor] | None = None) -> SamplerOutput:  # fmt: skip
        r"""Run the ladder down to the data.

        Args:
            x_top: shape (B, ...), the points of level ``start_level`` (default T: standard normal noise), in
                the model's units (normalised data times ``data_scale``, scaled by :math:`\sqrt{\bar a_t}`).
            noise: ``noise(idx)`` draws the chains' noise per sample.
            start_level: t in 1..T; the chains run levels t-1 .. 0.
            known: ``(mask, values)`` of x's shape, values in normalised data units.
        """
        m, lv = self.model, self.model.levels
        n = x_top.shape[0]
        start = lv.levels if start_level is None else int(start_level)
        if not 1 <= start <= lv.levels:
            raise ValueError(f"start_level must be in 1..{lv.levels}, got {start}")
        idx = torch.arange(n, device=x_top.device)
        h, propose = self._guided(m.h, y), self._guided(m.propose, y)
        x, nfe = x_top, 0
        for level in reversed(range(start)):
            i = torch.full((n,), level, dtype=torch.long, device=x.device)
            y0 = propose(x, i, y)
            if m.initializer is not None:
                y0 = y0 + lv.init_std[level] * noise(idx).to(x)
            x_next = x
            field = EnergyField(lambda v, _t, c, x_next=x_next, i=i: m.conditional_energy(v, x_next, i, c, h=h))
            s = lv.step[level] * math.sqrt(self.k_train / self.k)
            out = Langevin(steps=self.k, step_size=float(s), temperature=self.temperature)(field, y0, y, noise=noise)
            nfe += out.nfe
            x = out.x / lv.alpha[level]
            if known is not None:  # the observed entries, noised to this level
                seen = lv.abar[level].sqrt() * m.data_scale * known[1] + lv.sigma_bar[level] * noise(idx).to(x)
                x = torch.where(known[0].bool(), seen, x)
        i0 = torch.zeros(n, dtype=torch.long, device=x.device)
        score = EnergyField(lambda v, _t, c: -h(expand_like(lv.alpha[i0], v) * v, i0, c) / lv.step[0] ** 2)(x, None, y)
        if self.denoise:
            x = (x + lv.sigma_bar[0] ** 2 * score) / lv.abar[0].sqrt()
        x = x / m.data_scale
        if known is not None:
            x = torch.where(known[0].bool(), known[1], x)
        steps = torch.full((n,), nfe, dtype=torch.long, device=x.device)
        return SamplerOutput(x=x, steps=steps, field_norm=rms_flat(score), nfe=nfe)
