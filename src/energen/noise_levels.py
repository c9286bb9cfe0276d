"""The noise levels of diffusion recovery likelihood: a variance-preserving cosine-logSNR schedule."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

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
      (images) or the constant :math:`1/\bar\sigma_0` (the reference's 2-D toy), the std of its noise;
    - ``eta``: the same step in energen's unit, :math:`\eta_i = s_i^2 / 2` (Langevin
      :math:`y \leftarrow y + \eta_i \nabla \log p + \sqrt{2\eta_i}\, z`);
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
            "sigma": sigma, "step": (b2 * c).sqrt() * sigma, "eta": b2 * c * sigma**2 / 2, "weight": sigma[0] / sigma,
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
