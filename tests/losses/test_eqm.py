import torch

from energen.interpolants import Constant, TruncatedDecay
from energen.losses.eqm import FieldMatching, dispersive_loss
from energen.networks.base import NetSpec
from energen.networks.energy import ExplicitEnergy
from energen.networks.mlp import MLP


def test_flow_matching_oracle_has_zero_loss():
    # data = a single point mu: the exact velocity is (mu - x_t) / (1 - t)
    mu = torch.tensor([[1.5, -0.5]])

    def oracle(x, t, y=None):
        return (mu - x) / (1 - t)[:, None]

    obj = FieldMatching(weighting=Constant(1.0), time_conditioned=True)
    out = obj(oracle, mu.expand(64, 2), None, torch.Generator().manual_seed(0))
    assert out.per_sample.shape == (64,)
    assert out.per_sample.max() < 1e-8


def test_eqm_loss_is_per_sample_and_time_free():
    seen = {}

    def model(x, t, y=None):
        seen["t"] = t
        return torch.zeros_like(x)

    obj = FieldMatching(weighting=TruncatedDecay(), time_conditioned=False)
    out = obj(model, torch.randn(32, 3), None, torch.Generator().manual_seed(0))
    assert seen["t"] is None and out.per_sample.shape == (32,) and (out.per_sample >= 0).all()


def test_gamma_power_draws_gamma_from_beta_p_1():
    # density p gamma^(p-1): mean p / (p + 1), P(gamma < 1/2) = 2^-p
    seen = {}

    def model(x, t, y=None):
        seen["t"] = t
        return torch.zeros_like(x)

    for p in (1.0, 2.0, 0.5):
        obj = FieldMatching(weighting=Constant(1.0), time_conditioned=True, gamma_power=p)
        obj(model, torch.randn(40_000, 1), None, torch.Generator().manual_seed(0))
        t = seen["t"]
        assert abs(t.mean() - p / (p + 1)) < 0.01 and abs((t < 0.5).float().mean() - 0.5**p) < 0.01


def test_explicit_energy_trains_by_double_backward():
    for kind in ("dot", "l2"):
        model = ExplicitEnergy(MLP(NetSpec((2,)), width=16, depth=1), kind).train()
        obj = FieldMatching(weighting=TruncatedDecay(), time_conditioned=False)
        obj(model, torch.randn(16, 2), None, torch.Generator()).per_sample.mean().backward()
        assert all(p.grad is not None for p in model.parameters())
        x = torch.randn(5, 2, requires_grad=True)
        (g,) = torch.autograd.grad(model.energy(x).sum(), x)
        assert torch.allclose(model.eval()(x), -g, atol=1e-6)


def test_dispersive_loss():
    z = torch.randn(8, 4)
    assert dispersive_loss(z) <= 0
    assert abs(float(dispersive_loss(torch.ones(8, 4)))) < 1e-6
