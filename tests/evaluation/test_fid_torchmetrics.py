"""FID against an independent implementation: torchmetrics' ``FrechetInceptionDistance`` given the same small
feature network as energen (a TorchScript file with the calling convention of inception-2015-12-05.pt).

torchmetrics takes any ``nn.Module`` as its feature extractor, so neither torch-fidelity nor any weights are
needed. It accumulates feature sums and outer products in float64, forms the covariance as
``(sum x x^T - n mu mu^T) / (n - 1)``, takes ``tr sqrtm`` from the eigenvalues of the (non-symmetric) product
``S1 S2``, and returns the result cast to the features' dtype, float32. energen keeps the features in float64,
uses ``np.cov`` and a symmetric eigendecomposition. Both see bit-identical float32 features (same network,
same images, same batches), so they differ only by float64 rounding (relative ~1e-12 at this size) and
torchmetrics' final cast to float32 (relative <= 6e-8). ``RTOL = 1e-6`` leaves a factor of ~16 above the float32
rounding, and the test checks that the mistakes it must catch (covariance over N instead of N - 1, a
missing square root, a dropped mean term) move FID by more than 100 x RTOL on these data.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from standin import StandIn
from torch import nn

from energen.evaluation import fid
from energen.evaluation.metrics import frechet_distance, trace_sqrt_product

RTOL = 1e-6
N, BATCH = 300, 50


class FeaturesOf(nn.Module):
    """torchmetrics calls ``feature(images)``: the same TorchScript network, asked for its features."""

    num_features = 24

    def __init__(self, net: torch.jit.ScriptModule):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, return_features=True)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "tiny_inception.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated, yet it is the format of the FID Inception file
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(StandIn(width=24, kernel=5)).save(str(path))
    return fid.InceptionFeatures(path, batch_size=BATCH)


def _images(seed: int, brightness: float, spread: float) -> np.ndarray:
    """uint8 images (N, 3, 24, 24): pixel noise around a per-image colour drawn with std ``spread``, so the pooled
    features vary from image to image and the two sets differ mostly in covariance, not just in mean."""
    rng = np.random.default_rng(seed)
    colour = brightness + spread * rng.normal(size=(N, 3, 1, 1))
    x = colour + 30 * rng.normal(size=(N, 3, 24, 24))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _torchmetrics_fid(net: fid.InceptionFeatures, real: np.ndarray, fake: np.ndarray) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance  # here: its import takes seconds

    metric = FrechetInceptionDistance(feature=FeaturesOf(net.net))
    for i in range(0, N, BATCH):  # the batches energen uses, so the float32 features are the same
        metric.update(torch.from_numpy(real[i : i + BATCH]), real=True)
        metric.update(torch.from_numpy(fake[i : i + BATCH]), real=False)
    return float(metric.compute())


def test_fid_agrees_with_torchmetrics(net, tmp_path):
    real, fake = _images(0, 128.0, 40.0), _images(1, 140.0, 15.0)  # shifted, and narrower
    expected = _torchmetrics_fid(net, real, fake)

    fx, fy = net.features(real), net.features(fake)
    lowest = frechet_distance(fx, fy)  # features -> fitted Gaussians -> distance
    highest = fid.image_metrics(fake, net, ref_images=real, splits=2)["fid"]  # images in, metrics out
    fid.save_stats(tmp_path / "ref.npz", fx)  # the --save-stats / --ref route
    by_stats = fid.image_metrics(fake, net, ref_stats=tmp_path / "ref.npz", splits=2)["fid"]
    for got in (lowest, highest, by_stats):
        assert got == pytest.approx(expected, rel=RTOL)

    # The comparison is sharp enough to catch the classic mistakes, each far outside RTOL here.
    mu1, mu2 = fx.mean(0), fy.mean(0)
    s1n, s2n = np.cov(fx, rowvar=False, bias=True), np.cov(fy, rowvar=False, bias=True)
    s1, s2 = np.cov(fx, rowvar=False), np.cov(fy, rowvar=False)
    mean_term = ((mu1 - mu2) ** 2).sum()
    wrong = {
        "covariance over N": mean_term + np.trace(s1n + s2n) - 2 * trace_sqrt_product(s1n, s2n),
        "no square root": mean_term + np.trace(s1 + s2) - 2 * np.trace(s1 @ s2),
        "no mean term": np.trace(s1 + s2) - 2 * trace_sqrt_product(s1, s2),
    }
    for name, value in wrong.items():
        assert abs(value - expected) > 100 * RTOL * expected, name


def test_fid_of_a_set_with_itself_is_zero_in_both(net):
    real = _images(2, 128.0, 40.0)
    scale = float(np.trace(np.cov(net.features(real), rowvar=False)))  # FID's size for sets this spread
    assert abs(_torchmetrics_fid(net, real, real)) < 1e-9 * scale  # both give ~1e-11 x scale
    assert abs(fid.image_metrics(real, net, ref_images=real, splits=2)["fid"]) < 1e-9 * scale
