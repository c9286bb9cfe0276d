import torch
from torch.autograd import gradcheck

from energen.fields import EnergyField, GuidedField, SumField


def quadratic(mu):
    return lambda x, t=None, y=None: 0.5 * ((x - mu) ** 2).sum(dim=1)


def test_energy_field_is_minus_gradient():
    mu = torch.tensor([1.0, -2.0])
    x = torch.randn(5, 2)
    assert torch.allclose(EnergyField(quadratic(mu))(x), -(x - mu))


def test_energy_field_gradcheck_and_double_backward():
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    field = EnergyField(lambda x, t=None, y=None: net(x).squeeze(1) + (x**4).sum(1), create_graph=True)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda z: field(z), (x,))
    # the field's graph reaches the energy's parameters (what EqM-E training needs); the last bias
    # shifts E by a constant and rightly gets no gradient
    field(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in list(net.parameters())[:-1])


def test_energy_field_works_under_no_grad():
    with torch.no_grad():
        f = EnergyField(quadratic(torch.zeros(2)))(torch.ones(3, 2))
    assert torch.allclose(f, -torch.ones(3, 2)) and not f.requires_grad


def test_guided_field_interpolates_conditional_and_unconditional():
    def base(x, t=None, y=None):
        return x * 0 + y[:, None].float()  # "field" = the label

    y = torch.tensor([3, 5])
    x = torch.zeros(2, 2)
    assert torch.allclose(GuidedField(base, scale=1.0, null_label=10)(x, None, y), y[:, None].float().expand(2, 2))
    assert torch.allclose(GuidedField(base, scale=0.0, null_label=10)(x, None, y), torch.full((2, 2), 10.0))
    g = GuidedField(base, scale=2.0, null_label=10)(x, None, y)
    assert torch.allclose(g, 10 + 2 * (y[:, None].float() - 10).expand(2, 2))


def test_sum_field_is_product_of_experts():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 2.0])
    f = SumField([EnergyField(quadratic(a)), EnergyField(quadratic(b))])
    x = torch.randn(6, 2)
    # product of two unit Gaussians = Gaussian at the mean of the centres with twice the precision
    assert torch.allclose(f(x), -2 * (x - (a + b) / 2), atol=1e-6)
