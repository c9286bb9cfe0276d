import math

import pytest
import torch

from energen.errors import ConfigError
from energen.fields import EnergyField
from energen.samplers.gradient_descent import GradientDescent
from energen.samplers.langevin import Langevin
from energen.samplers.mala import MetropolisLangevin
from energen.samplers.nesterov import Nesterov
from energen.samplers.ode import ODESolver
from energen.samplers.registry import SAMPLERS
from energen.samplers.smc import SequentialMonteCarlo

MU = torch.tensor([2.0, -1.0])


def field(x, t=None, y=None):
    return EnergyField(lambda z, t=None, y=None: 0.5 * ((z - MU) ** 2).sum(1))(x, t, y)


def test_gradient_descent_matches_closed_form():
    x0 = torch.randn(8, 2)
    eta, k = 0.1, 25
    out = GradientDescent(steps=k, step_size=eta)(field, x0)
    assert torch.allclose(out.x, MU + (1 - eta) ** k * (x0 - MU), atol=1e-5)
    assert (out.steps == k).all() and out.nfe == k


def test_nesterov_without_momentum_is_gradient_descent_and_converges():
    x0 = torch.randn(8, 2)
    gd = GradientDescent(steps=10, step_size=0.2)(field, x0).x
    assert torch.allclose(Nesterov(steps=10, step_size=0.2, momentum=0.0)(field, x0).x, gd)
    nag = Nesterov(steps=200, step_size=0.2, momentum=0.3)(field, x0).x
    assert torch.allclose(nag, MU.expand(8, 2), atol=1e-4)


def test_adaptive_stopping_per_sample():
    # sample i starts at distance d_i; GD shrinks it by (1 - eta) per step, so it stops after
    # ceil(log(tol / d_i) / log(1 - eta)) steps
    d = torch.tensor([0.05, 1.0, 10.0])
    x0 = MU + d[:, None] * torch.tensor([1.0, 0.0])
    tol, eta = 0.1, 0.1
    out = GradientDescent(steps=500, step_size=eta, tol=tol)(field, x0)
    # the stopping test uses the RMS over 2 dims: |x - mu| / sqrt 2
    expected = [max(0, math.ceil(math.log(tol * math.sqrt(2) / di) / math.log(1 - eta))) for di in d.tolist()]
    assert out.steps.tolist() == expected
    assert (out.field_norm < tol).all()
    assert out.nfe == max(expected) + 1
    late = GradientDescent(steps=500, step_size=eta, tol=tol, record=[400])(field, x0)
    assert torch.equal(late.snapshots[400], out.x)  # everyone stopped before step 400


def test_ode_solver_matches_exponential_decay():
    x0 = torch.randn(4, 2)
    out = ODESolver(method="dopri5", horizon=2.0, rtol=1e-7, atol=1e-7)(field, x0)
    assert torch.allclose(out.x, MU + math.exp(-2.0) * (x0 - MU), atol=1e-5)


def test_gradient_descent_with_unit_horizon_is_euler_for_time_dependent_fields():
    def velocity(x, t, y=None):
        return -x * t[:, None]

    x0 = torch.randn(5, 2)
    gd = GradientDescent(steps=20, step_size=0.05)(velocity, x0).x
    ode = ODESolver(method="euler", steps=20, horizon=1.0)(velocity, x0).x
    assert torch.allclose(gd, ode, atol=1e-6)


def test_every_sampler_builds_and_runs_any_field():
    for name in SAMPLERS:
        settings = SAMPLERS.get(name)(steps=5)
        if settings.walks_levels:  # the recovery sampler walks a recovery model's levels: tests/methods
            continue
        s = settings.with_options(step_size=0.1).build()
        assert s(field, torch.randn(3, 2)).x.shape == (3, 2)


def test_bad_sampler_arguments():
    with pytest.raises(ConfigError):
        GradientDescent(steps=0, step_size=0.1)
    with pytest.raises(ConfigError):
        ODESolver(method="nope")


def test_per_sample_noise_ignores_the_batch():
    from energen.utils import PerSampleNoise

    a = PerSampleNoise([7, 8, 9], (2,))
    b = PerSampleNoise([8], (2,))
    first = a([0, 1, 2])
    assert torch.equal(first[1], b([0])[0])
    assert torch.equal(a([1])[0], b([0])[0])  # the second draw of stream 8, whoever else drew


def test_annealed_noise_is_reproducible_and_vanishes_at_the_end():
    from energen.utils import PerSampleNoise

    x0 = torch.zeros(4, 2)
    s = GradientDescent(steps=50, step_size=0.1, noise=1.0)
    a = s(field, x0, noise=PerSampleNoise(range(4), (2,))).x
    b = s(field, x0[:2], noise=PerSampleNoise(range(2), (2,))).x
    assert torch.equal(a[:2], b) and not torch.allclose(a, GradientDescent(steps=50, step_size=0.1)(field, x0).x)


def test_metropolis_langevin_is_exact_where_langevin_is_biased():
    # E = |x - 1|^2 / 2 (mean 1, variance 1) with eta = 1/2: unadjusted Langevin's chain keeps variance
    # 1 / (1 - eta / 2) = 4/3; the Metropolis correction removes the bias
    def energy(x, t=None, y=None):
        return (x - 1).pow(2).sum(1) / 2

    torch.manual_seed(0)
    x0 = torch.randn(4000, 2) * 3
    ula = Langevin(steps=150, step_size=0.5)(EnergyField(energy), x0).x
    mala = MetropolisLangevin(steps=150, step_size=0.5)
    x = mala(energy, x0).x
    assert abs(ula.var() - 4 / 3) < 0.08 and abs(x.var() - 1) < 0.06 and abs(x.mean() - 1) < 0.04
    assert 0.3 < mala.acceptance < 0.99
    with pytest.raises(ConfigError):
        MetropolisLangevin(steps=0, step_size=1.0)


def two_wells(x, t=None, y=None):
    """Wells at -2 and +2 (std 0.5) holding 0.2 and 0.8 of the mass (class 1: 0.8 and 0.2)."""
    d = torch.stack([(x + 2).pow(2).sum(1), (x - 2).pow(2).sum(1)], 1) / (2 * 0.25)
    w = torch.tensor([0.2, 0.8]).log()
    logw = w.expand(len(x), 2) if y is None else torch.where((y == 1)[:, None], w.flip(0), w)
    return -torch.logsumexp(-d + logw, 1)


def test_smc_weighs_modes_by_their_mass_where_langevin_takes_the_nearest():
    from energen.utils import PerSampleNoise

    n = 2000

    def run(sampler, field, y=None):
        noise = PerSampleNoise(range(n), (1,))
        return sampler(field, noise(range(n)), y, noise=noise).x

    smc = SequentialMonteCarlo(steps=100, step_size=0.045)  # proposal noise std 0.3
    x = run(smc, EnergyField(two_wells))
    assert abs((x > 0).float().mean() - 0.8) < 0.03 and abs(x[x > 0].std() - 0.5) < 0.03
    assert 0.9 < smc.acceptance <= 1 and smc.resamplings >= 1
    langevin = run(Langevin(steps=100, step_size=0.045), EnergyField(two_wells))
    assert abs((langevin > 0).float().mean() - 0.5) < 0.05  # the basins split the start evenly
    y = torch.arange(n) % 2  # classes resample apart: class 1 weighs the wells the other way round
    xy = run(smc, EnergyField(two_wells), y)
    assert abs((xy[y == 0] > 0).float().mean() - 0.8) < 0.04 and abs((xy[y == 1] > 0).float().mean() - 0.2) < 0.04
    # a field without an energy: SMC weighs by the field's line integral
    xf = run(smc, lambda x, t=None, y=None: EnergyField(two_wells)(x))
    assert abs((xf > 0).float().mean() - 0.8) < 0.03
    boxed = run(SequentialMonteCarlo(steps=100, step_size=0.045, box=(-3.0, 2.5)), EnergyField(two_wells))
    assert boxed.min() >= -3 and boxed.max() <= 2.5  # uniform start on the box, and e^-E on it only:
    right, left = 0.8 * 0.8413, 0.2 * 0.9772  # the right well cut 1 std above its centre, the left 2 std below
    assert abs((boxed > 0).float().mean() - right / (right + left)) < 0.03
    with pytest.raises(ConfigError, match="in-painting needs a step sampler"):
        smc(EnergyField(two_wells), torch.zeros(2, 1), constrain=lambda x, i, t: x)


def test_field_energy_is_the_line_integral_of_a_gradient_field():
    from energen.fields import FieldEnergy

    def energy(x, t=None, y=None):
        return ((x - MU) ** 2).sum(1) / 2 + torch.sin(2 * x).sum(1)

    x = torch.randn(6, 2) * 2
    implied = FieldEnergy(EnergyField(energy))(x)
    assert torch.allclose(implied, energy(x) - energy(torch.zeros(6, 2)), atol=1e-4)


def test_smc_runs_on_a_field_only_model(tiny_run):
    from energen import Run

    run = Run(tiny_run)  # EqM: a field, no energy; smc weighs by the field's line integral
    x, out = run.sample(40, seed=0, settings=run.default_sampler.switch("smc").with_options(steps=10, step_size=0.1))
    assert x.shape == (40, 2) and torch.isfinite(x).all() and out.nfe == 11
