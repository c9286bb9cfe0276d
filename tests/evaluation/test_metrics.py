import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from energen.evaluation.metrics import digits_classifier, frechet_distance, frechet_stats_distance, mmd, sliced_w1


def test_sliced_w1_of_a_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=g)
    assert sliced_w1(x, x) < 1e-9
    # shifting by d along an axis moves every 1-D projection by d*|cos(phi)|: mean 2d/pi
    d = 1.0
    assert abs(sliced_w1(x, x + torch.tensor([d, 0.0]), projections=2000) - 2 * d / math.pi) < 0.02


def test_mmd_separates_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert abs(mmd(a, b)) < 0.01 and mmd(a, b + 1.0) > 0.1


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    assert abs(frechet_distance(a, a + np.array([3.0, 0, 4.0])) - 25.0) < 0.1
    # variances 1 vs 4: (1 - 2)^2 per dimension
    assert abs(frechet_distance(a, 2 * rng.normal(size=(20000, 3))) - 3.0) < 0.15


@pytest.mark.parametrize(("d", "n1", "n2"), [(16, 500, 400), (32, 10, 50), (32, 20, 10), (64, 8, 8), (50, 100, 30)])
def test_frechet_stats_distance_matches_scipy_sqrtm(d, n1, n2):
    """The eigenvalue trace equals pytorch-fid's sqrtm computation, rank-deficient covariances (n < d) included."""
    rng = np.random.default_rng(d + n1 + n2)
    a = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d))
    b = rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) + 0.5
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # sqrtm warns on singular products
        warnings.simplefilter("ignore")
        tr = np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    got = frechet_stats_distance(mu1, s1, mu2, s2)
    assert abs(got - expected) <= 1e-6 * abs(expected)
    assert abs(frechet_stats_distance(mu1, s1, mu1, s1)) <= 1e-6 * np.trace(s1)  # tiny negative eigenvalues clipped


def test_digits_classifier_is_accurate_and_deterministic():
    clf = digits_classifier()
    assert clf.test_accuracy > 0.93
    from energen.data.datasets import digits_dataset

    f = clf.features(digits_dataset().ref_x[:5])
    assert f.shape == (5, 128) and (f >= 0).all()


def test_exact_w1_separates_a_board_from_its_bounding_box():
    from energen.data.toys import TOYS

    g = torch.Generator().manual_seed(0)
    board = TOYS.get("checkerboard")(1500, g)
    other = TOYS.get("checkerboard")(1500, g)
    square = torch.rand(1500, 2, generator=g) * 8 - 4  # the board's bounding box, uniformly
    from energen.evaluation.metrics import w1_exact

    assert w1_exact(board, other) < 0.5 * w1_exact(square, other)
    assert w1_exact(other[:500], other[:500]) == 0  # below max_points both sides are the whole set
