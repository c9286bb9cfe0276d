"""Sample-quality metrics: sliced and exact Wasserstein-1, MMD, and a Fréchet distance for digits.

All metrics take two sets of points of shape (N, ...) and flatten them. They are deterministic: random
projections and subsamples come from fixed seeds.

Digits Fréchet distance ("FD-digits"): the Fréchet distance between Gaussians fitted to the 128-unit
hidden-layer (ReLU) features of a fixed MLP classifier, trained by scikit-learn on the digits training
split (``MLPClassifier(hidden_layer_sizes=(128,), random_state=0)``, inputs scaled to [0, 1]). The same
classifier labels conditional samples for the class-accuracy metric.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).double()


def sliced_w1(x: Tensor, y: Tensor, *, projections: int = 512, quantiles: int = 1000, seed: int = 0) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections.

    Uses ``quantiles`` evenly spaced quantiles of each projected set, so the sets may differ in size.
    """
    x, y = _flat(x), _flat(y)
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    q = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    qx = torch.quantile(x @ dirs, q, dim=0)
    qy = torch.quantile(y @ dirs, q, dim=0)
    return float((qx - qy).abs().mean())


def w1_exact(x: Tensor, y: Tensor, *, max_points: int = 1000, seed: int = 0) -> float:
    """Wasserstein-1 between equal-size random subsets, by an exact optimal assignment (Hungarian).

    Unlike sliced W1, which compares only 1-D projections, it scores the joint arrangement of the points.
    Its floor (two independent samples of the same distribution)
    is not zero; compare against that floor. O(n^3): at most ``max_points`` points per side.
    """
    from scipy.optimize import linear_sum_assignment

    g = torch.Generator().manual_seed(seed)
    n = min(len(x), len(y), max_points)
    a = _flat(x)[torch.randperm(len(x), generator=g)[:n]]
    b = _flat(y)[torch.randperm(len(y), generator=g)[:n]]
    cost = torch.cdist(a, b).numpy()
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def mmd(x: Tensor, y: Tensor, *, max_points: int = 2000, seed: int = 0) -> float:
    """Unbiased squared MMD with a sum of RBF kernels at 0.5, 1, 2 and 4 times the median distance."""
    g = torch.Generator().manual_seed(seed)
    x, y = _flat(x), _flat(y)
    if len(x) > max_points:
        x = x[torch.randperm(len(x), generator=g)[:max_points]]
    if len(y) > max_points:
        y = y[torch.randperm(len(y), generator=g)[:max_points]]
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    med = d2[d2 > 0].median()
    k = sum(torch.exp(-d2 / (s * s * med)) for s in (0.5, 1.0, 2.0, 4.0))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def frechet_distance(fx: np.ndarray, fy: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets of shape (N, D)."""
    return frechet_stats_distance(fx.mean(0), np.cov(fx, rowvar=False), fy.mean(0), np.cov(fy, rowvar=False))


def frechet_stats_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(s1 + s2 - 2 sqrtm(s1 s2)), the value of pytorch-fid's ``calculate_frechet_distance``.

    tr sqrtm(s1 s2) is computed from eigenvalues rather than with ``scipy.linalg.sqrtm``: s1 s2 has the
    same eigenvalues as the symmetric positive semi-definite sqrt(s1) s2 sqrt(s1) (AB and BA do), so they are
    real and non-negative, and the trace of the square root is the sum of their square roots. Two symmetric
    eigendecompositions (``eigh``) are exact for singular covariances too (no ``eps`` retry needed) and a few
    times faster than ``sqrtm`` at 2,048 dimensions. Tiny negative eigenvalues from rounding are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(s1, dtype=np.float64), np.asarray(s2, dtype=np.float64)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrtm(s1 s2) for symmetric positive semi-definite s1 and s2, from eigenvalues (see above)."""
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # sqrt(s1)
    m = root1 @ s2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


class DigitsClassifier:
    """The fixed feature extractor and classifier for digits (see module docstring)."""

    def __init__(self):
        from sklearn.neural_network import MLPClassifier

        from ..data.datasets import digits_dataset

        ds = digits_dataset()
        x = ds.train_x.reshape(len(ds.train_x), -1).numpy() / 16.0
        self.clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=400, random_state=0).fit(x, ds.train_y.numpy())
        xt = ds.ref_x.reshape(len(ds.ref_x), -1).numpy() / 16.0
        self.test_accuracy = float((self.clf.predict(xt) == ds.ref_y.numpy()).mean())

    def _inputs(self, x: Tensor) -> np.ndarray:
        """Digits in data coordinates (N, 1, 8, 8), values 0..16."""
        return x.reshape(x.shape[0], -1).double().numpy() / 16.0

    def features(self, x: Tensor) -> np.ndarray:
        h = self._inputs(x) @ self.clf.coefs_[0] + self.clf.intercepts_[0]
        return np.maximum(h, 0)

    def predict(self, x: Tensor) -> np.ndarray:
        return self.clf.predict(self._inputs(x))


@functools.lru_cache(maxsize=1)
def digits_classifier() -> DigitsClassifier:
    return DigitsClassifier()


def evaluate(samples: Tensor, reference: Tensor, *, data_name: str, scale: Tensor | None = None,
             target_class: int | None = None) -> dict[str, float]:  # fmt: skip
    """All metrics that apply: sliced W1, exact W1 (on 1,000-point subsets) and MMD always (on data
    divided by ``scale``, so distances are in units of the data's standard deviation), FD-digits and class
    accuracy for digits."""
    s = 1.0 if scale is None else scale
    out = {
        "n_samples": int(len(samples)),
        "n_reference": int(len(reference)),
        "sliced_w1": sliced_w1(samples / s, reference / s),
        "w1": w1_exact(samples / s, reference / s),
        "mmd": mmd(samples / s, reference / s),
    }
    if data_name == "digits":
        clf = digits_classifier()
        out["fd_digits"] = frechet_distance(clf.features(samples), clf.features(reference))
        if target_class is not None:
            out["class_accuracy"] = float((clf.predict(samples) == target_class).mean())
    return out
