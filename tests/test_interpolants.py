import pytest
import torch

from energen.interpolants import WEIGHTINGS, LinearPath, TruncatedDecay


def test_path_endpoints():
    x, eps = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(LinearPath().sample(x, eps, torch.zeros(4)).x_t, eps)
    assert torch.allclose(LinearPath().sample(x, eps, torch.ones(4)).x_t, x)
    assert torch.allclose(LinearPath().sample(x, eps, torch.rand(4)).velocity, x - eps)


@pytest.mark.parametrize("name", ["truncated", "linear"])
def test_eqm_target_vanishes_at_data(name):
    c = WEIGHTINGS.get(name)()
    assert c(torch.ones(3)).abs().max() == 0
    assert (c(torch.rand(100) * 0.99) > 0).all()


def test_truncated_decay_shape():
    c = TruncatedDecay(a=0.8, scale=4.0)
    t = torch.tensor([0.0, 0.5, 0.8, 0.9, 1.0])
    assert torch.allclose(c(t), torch.tensor([4.0, 4.0, 4.0, 2.0, 0.0]), atol=1e-5)


def test_every_weighting_builds():
    for name in WEIGHTINGS:
        assert WEIGHTINGS.get(name)()(torch.rand(5)).shape == (5,)
