r"""Out-of-distribution detection by energy.

A score per input, higher meaning less like the training data:

- ``energy``: the learned scalar energy :math:`E(x)` (EqM-E, CD, and DRL/CDRL at a chosen noise level);
- ``field-norm``: the RMS of the time-free field at x. EqM's equilibrium field vanishes on the data (its
  target is zero at :math:`\gamma = 1`) and grows away from it, so its norm scores an implicit EqM model,
  which has no energy; it applies to every time-free model.

Flow matching learns a time-dependent velocity with neither an energy nor an equilibrium, so it has no score.
Class-conditional runs are scored by their unconditional (null-label) energy or field. Metrics follow the
OOD literature: AUROC and AUPR with the OOD inputs as positives (and AUPR with the in-distribution inputs
as positives), and the FPR of OOD inputs at 95% TPR of in-distribution ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..run import Run
from ..utils import rms_flat

SCORES = ("energy", "field-norm")


def default_score(run: Run) -> str:
    return "energy" if run.has_energy else "field-norm"


def ood_scores(run: Run, x: Tensor, *, score: str | None = None, level: int = 0, batch_size: int = 1000) -> Tensor:
    """Scores of ``x`` (data coordinates, shape (N, ...)) -> shape (N,), higher = more out of distribution."""
    score = score or default_score(run)
    if score not in SCORES:
        raise ConfigError(f"unknown score {score!r}; choose one of: {', '.join(SCORES)}")
    if run.learns_velocity:
        raise ConfigError(f"method {run.cfg.method!r} learns a time-dependent velocity with no energy or "
                          "equilibrium to score; use eqm, eqm-e, drl, cdrl or cd")  # fmt: skip
    if score == "energy" and not run.has_energy:
        raise ConfigError(f"method {run.cfg.method!r} learns no scalar energy; use --score field-norm "
                          "(the RMS of its equilibrium field) or a run of eqm-e, drl, cdrl or cd")  # fmt: skip
    if score == "field-norm" and level != 0:
        raise ConfigError("--level selects the energy of a drl/cdrl noise level; the field norm is of level 0")
    out = []
    for lo in range(0, len(x), batch_size):
        xb = x[lo : lo + batch_size]
        if score == "energy":
            out.append(run.energy(xb, level=level).float().cpu())
        else:
            with torch.no_grad():
                out.append(rms_flat(run.field(run.info.normalize(xb.to(run.device)))).float().cpu())
    return torch.cat(out)


def ood_metrics(scores_in: Tensor, scores_ood: Tensor) -> dict[str, float]:
    """AUROC, AUPR (OOD positive), AUPR-in (in-distribution positive) and FPR at 95% TPR."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_in, s_ood = np.asarray(scores_in, dtype=np.float64), np.asarray(scores_ood, dtype=np.float64)
    if len(s_in) == 0 or len(s_ood) == 0:
        raise ConfigError("OOD metrics need in-distribution and OOD inputs")
    if not (np.isfinite(s_in).all() and np.isfinite(s_ood).all()):
        raise ConfigError("scores contain NaN or infinite values")
    scores = np.concatenate([s_in, s_ood])
    is_ood = np.concatenate([np.zeros(len(s_in)), np.ones(len(s_ood))])
    threshold = np.quantile(s_in, 0.95)  # 95% of in-distribution inputs score at or below it
    return {
        "auroc": float(roc_auc_score(is_ood, scores)),
        "aupr": float(average_precision_score(is_ood, scores)),
        "aupr_in": float(average_precision_score(1 - is_ood, -scores)),
        "fpr95": float((s_ood <= threshold).mean()),
        "n_in": len(s_in),
        "n_ood": len(s_ood),
    }
