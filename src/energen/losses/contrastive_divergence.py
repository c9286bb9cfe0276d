r"""Contrastive-divergence energy-based models: IGEBM (Du & Mordatch, 2019) and Improved CD (Du et al., 2021).

An energy network :math:`E_\theta(x)` (:math:`p \propto e^{-E}`) is trained by contrastive divergence:
lower the energy of data, raise the energy of samples :math:`x^-` drawn from the model by a short Langevin
chain. The chains start from a :class:`ReplayBuffer` of past chain ends (a fraction started fresh from noise), so that
short chains act like long persistent ones. The per-sample loss is

.. math::  E(x^+) - E(x^-) + \alpha\,(E(x^+)^2 + E(x^-)^2),

the energy L2 regulariser :math:`\alpha` keeping the energies near zero (IGEBM's ``l2_coeff``, 1).

Improved CD adds, each switchable:

- ``kl``: the term the usual CD gradient drops, :math:`E_{\bar\theta}(x_K)` with :math:`x_K` the last Langevin
  step recomputed *with* its graph and the energy's parameters frozen, so the gradient reaches
  :math:`\theta` only through the sampler (truncated back-propagation through one step). It makes the
  sampler itself better at lowering the energy.
- ``entropy``: :math:`-\log \min_j \lVert x_K - b_j \rVert`, the nearest-neighbour distance to buffer
  samples, which pushes samples apart (an entropy estimate) and counters mode collapse.
- ``augment``: image chains drawn from the buffer are first moved by a random data augmentation (a
  one-pixel shift here), a large Metropolis-free jump between modes; without the two terms above it makes
  the energy collapse (as the Improved-CD paper reports).

Defaults and the measurements behind them: ``docs/methods/contrastive.md``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..fields import EnergyField
from ..losses.base import LossOutput, drop_labels
from ..losses.replay_buffer import DATA_START_NOISE, ReplayBuffer
from ..samplers.langevin import Langevin
from ..samplers.mala import MetropolisLangevin

MAX_ENERGY = 10.0  # the ICD code's abort rule, |mean E(x+)| > 10 at its alpha = 1, scaled by 1 / alpha: the loss


MAX_GAP = 0.75  # the gap E(x-) - E(x+) may reach 1 / alpha only when the L2 term alone holds the energies (at


def data_jump(energy, x: Tensor, y: Tensor | None, data: Tensor, generator: torch.Generator,
              std: float = DATA_START_NOISE) -> tuple[Tensor, Tensor]:  # fmt: skip
    r"""One independence Metropolis-Hastings step per chain towards :math:`p \propto e^{-E}`: propose
    :math:`x'` from :math:`q`, the batch ``data`` blurred by Gaussian noise of std ``std`` (a kernel density:
    a random data point plus noise), accept with probability

    .. math::  \min\Big(1,\ \exp\big(E(x) - E(x') + \log q(x) - \log q(x')\big)\Big).

    ``q`` does not depend on the chain, so the step leaves :math:`e^{-E}` invariant whatever the batch, and a
    chain can jump between modes that Langevin steps cannot cross: without such moves chains started from the
    data keep the data's share of each mode, and contrastive divergence gets no signal about the energy's own
    mode weights (they drift). Returns the chains and the accepted mask.
    """
    n, m = x.shape[0], data.shape[0]
    flat = data.reshape(m, -1)
    j = torch.randint(0, m, (n,), generator=generator).to(data.device)
    xp = data[j] + std * torch.randn(x.shape, generator=generator).to(x)

    def log_q(v: Tensor) -> Tensor:  # up to a constant shared by x and x'
        return torch.logsumexp(-torch.cdist(v.reshape(n, -1), flat).pow(2) / (2 * std * std), dim=1)

    log_a = energy(x, None, y) - energy(xp, None, y) + log_q(x) - log_q(xp)
    u = torch.rand(n, generator=generator).to(x)
    accept = torch.log(u) < log_a  # u = 0 gives -inf: accepted
    return torch.where(accept.reshape(-1, *[1] * (x.dim() - 1)), xp, x), accept


def check_mh(*, step: float, noise: float, clipped: bool, clamped: bool, icd: bool) -> None:
    """Metropolis adjustment corrects exact Langevin only: noise sqrt(2 step), no clip, no clamp, no ICD terms."""
    if icd or clipped or clamped or not math.isclose(noise, math.sqrt(2 * step)):
        raise ConfigError("--langevin-mh corrects exact Langevin only: --langevin-noise sqrt(2 * step), no "
                          "--langevin-clip or clamp, no ICD terms")  # fmt: skip


def shift_images(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image of shape (B, C, H, W) moved by a random shift of -1, 0 or 1 pixel per axis (edge-replicated)."""
    b = x.shape[0]
    shifts = torch.randint(-1, 2, (b, 2), generator=generator)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                        for i, (dy, dx) in enumerate(shifts.tolist())])  # fmt: skip


class ContrastiveDivergence:
    r"""The CD loss with replay-buffer Langevin negatives, and the Improved-CD terms (module docstring).

    The model is a :class:`~energen.networks.ScalarEnergy` (``model.energy(x, t, y)`` of shape (B,)). The
    chain is :class:`~energen.samplers.Langevin` with gradient step ``step`` (:math:`\eta`, so
    :math:`x \leftarrow x - \eta \nabla E + \sigma z`) and noise std ``noise`` (:math:`\sigma`;
    :math:`\sqrt{2\eta}` is exact Langevin at temperature 1, IGEBM uses far less), per-element gradient clip
    ``grad_clip`` and clamping to the data box. It runs in ``eval`` mode, so spectral normalisation makes
    one power iteration per optimiser step, not one per chain step (as IGEBM's chains run).

    Args:
        buffer: the replay buffer (its state is the objective's ``state_dict``).
        steps, step, noise, grad_clip, clamp: the chain, as above.
        energy_reg: :math:`\alpha`.
        kl, entropy: weights of the ICD terms (0 disables them); ``augment``: shift buffer images.
        jump: before each chain, one :func:`data_jump` per chain (an exact Metropolis-Hastings move between
            modes; logged as ``jump``, its acceptance rate).
        mh: Metropolis-adjust the chain (:class:`~energen.samplers.MetropolisLangevin`; exact Langevin only,
            ``noise`` = :math:`\sqrt{2\eta}`, no clip or clamp, no ICD terms): chains exact for
            :math:`e^{-E}` at their step size, so the energy cannot learn to correct their discretisation bias.
        label_dropout, num_classes: classifier-free guidance training (label ``num_classes`` is "none").
    """

    def __init__(self, *, buffer: ReplayBuffer, steps: int, step: float, noise: float,
                 grad_clip: float | None = None, clamp: tuple[float, float] | None = None, energy_reg: float = 1.0,
                 kl: float = 0.0, entropy: float = 0.0, augment: bool = False, label_dropout: float = 0.1,
                 num_classes: int = 0, mh: bool = False, jump: bool = False):  # fmt: skip
        if mh:
            check_mh(step=step, noise=noise, clipped=grad_clip is not None, clamped=clamp is not None,
                     icd=kl > 0 or entropy > 0)  # fmt: skip
        self.mh, self.jump = mh, jump
        self.buffer, self.steps, self.step, self.noise = buffer, steps, step, noise
        self.grad_clip, self.clamp, self.energy_reg = grad_clip, clamp, energy_reg
        self.kl, self.entropy, self.augment = kl, entropy, augment
        self.label_dropout, self.num_classes = label_dropout, num_classes

    def chain(self, steps: int) -> Langevin:
        """Langevin at eta with noise std sigma: temperature sigma^2 / (2 eta)."""
        return Langevin(steps=steps, step_size=self.step, temperature=self.noise**2 / (2 * self.step),
                        grad_clip=self.grad_clip, clamp=self.clamp)  # fmt: skip

    def state_dict(self) -> dict[str, Tensor]:
        return self.buffer.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.buffer.load_state_dict(state)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor | None, generator: torch.Generator) -> LossOutput:
        n, dev = x.shape[0], x.device
        y = drop_labels(y, self.label_dropout, self.num_classes, generator)
        x0, fresh = self.buffer.sample(n, x)
        if self.augment:
            x0 = torch.where(fresh.reshape(-1, *[1] * (x.dim() - 1)), x0, shift_images(x0, self.buffer.generator))
        x0 = x0.to(dev)

        def randn(idx: Tensor) -> Tensor:
            return torch.randn((len(idx), *x.shape[1:]), generator=generator).to(dev)

        was_training = model.training
        model.eval()
        jumped = None
        if self.jump:
            with torch.no_grad():
                x0, jumped = data_jump(model.energy, x0, y, x.detach(), generator)
        icd = self.kl > 0 or self.entropy > 0
        field = EnergyField(model.energy)
        if self.mh:
            mala = MetropolisLangevin(steps=self.steps, step_size=self.step)
            x_neg = mala(model.energy, x0, y, noise=randn).x
        else:
            x_neg = self.chain(self.steps - 1 if icd else self.steps)(field, x0, y, noise=randn).x
        x_kl = None
        if icd:  # the last step again, with its graph: x_K as a function of theta
            xk = x_neg.detach()
            f = EnergyField(model.energy, create_graph=True)(xk, None, y)  # -grad E, differentiable in theta
            if self.grad_clip is not None:
                f = f.clamp(-self.grad_clip, self.grad_clip)
            x_kl = xk + self.step * f + self.noise * randn(torch.arange(n))
            if self.clamp is not None:
                x_kl = x_kl.clamp(*self.clamp)
            x_neg = x_kl.detach()
        model.train(was_training)

        e_pos = model.energy(x, None, y)
        e_neg = model.energy(x_neg, None, y)
        per_sample = e_pos - e_neg + self.energy_reg * (e_pos.pow(2) + e_neg.pow(2))
        stats = {"e_pos": e_pos.mean().item(), "e_neg": e_neg.mean().item(),
                 "e_gap": (e_neg - e_pos).mean().item()}  # fmt: skip
        if self.mh:
            stats["accept"] = mala.acceptance
        if jumped is not None:
            stats["jump"] = jumped.float().mean().item()
        if self.kl > 0:
            params = [p for p in model.parameters() if p.requires_grad]
            for p in params:  # frozen: the gradient reaches theta only through x_kl
                p.requires_grad_(False)
            e_kl = model.energy(x_kl, None, y)
            for p in params:
                p.requires_grad_(True)
            per_sample = per_sample + self.kl * e_kl
            stats["kl"] = e_kl.mean().item()
        if self.entropy > 0 and self.buffer.count >= 100:
            ref = self.buffer.draw(100).to(dev)
            d = torch.cdist(x_kl.reshape(n, -1), ref.reshape(len(ref), -1)).min(dim=1).values
            nn_log = torch.log(d + 1e-8)
            per_sample = per_sample - self.entropy * nn_log
            stats["nn_log_dist"] = nn_log.mean().item()
        self.buffer.push(x_neg)
        problem = None
        limit = MAX_ENERGY / max(self.energy_reg, 1e-3)
        gap_limit = MAX_GAP / max(self.energy_reg, 1e-3)
        if not math.isfinite(stats["e_pos"]) or abs(stats["e_pos"]) > limit:
            problem = (f"the data energy drifted to {stats['e_pos']:.3g} (|E| > {limit:g} = 10 / alpha); raise "
                       "--energy-reg, lower --lr, or turn on --spectral-norm")  # fmt: skip
        elif not math.isfinite(stats["e_gap"]) or stats["e_gap"] > gap_limit:
            problem = (f"the energy gap E(x-) - E(x+) ran away to {stats['e_gap']:.3g} (> "
                       f"{gap_limit:g} = 0.75 / alpha): the chains no longer reach the "
                       "data's energy; lower --langevin-step or --lr")  # fmt: skip
        return LossOutput(per_sample=per_sample, stats=stats, problem=problem)
