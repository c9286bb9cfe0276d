"""Recovery likelihood (DRL, CDRL): the schedule, the conditional energy, Langevin at a level, sampling."""

import math

import pytest
import torch
from conftest import tiny_config
from torch import nn

from energen import Run, train
from energen.errors import ConfigError
from energen.fields import EnergyField
from energen.networks.recovery import RecoveryModel
from energen.noise_levels import NoiseLevels
from energen.samplers.langevin import Langevin
from energen.samplers.recovery import AncestralSampler
from energen.utils import PerSampleNoise

M, V = 0.5, 0.3  # 1-D Gaussian "data" N(M, V): every level's marginal and posterior are known exactly


def test_schedule_matches_the_reference_tables():
    lv = NoiseLevels(6, b2=4e-4)  # CDRL on images: the reference's b^2 = 4e-4
    torch.testing.assert_close(lv.logsnr, torch.tensor([9.80, 2.69, 1.20, 0.14, -0.88, -2.17, -5.10]), atol=0.01,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(lv.sigma, torch.tensor([0.252, 0.424, 0.551, 0.671, 0.808, 0.970]), atol=2e-3, rtol=0)
    torch.testing.assert_close(lv.step, torch.tensor([0.0050, 0.049, 0.089, 0.129, 0.172, 0.219]), atol=1e-3, rtol=0)
    torch.testing.assert_close(lv.weight, torch.tensor([1.0, 0.595, 0.458, 0.376, 0.312, 0.260]), atol=2e-3, rtol=0)
    torch.testing.assert_close(lv.init_std, torch.tensor([0.0072, 0.201, 0.325, 0.404, 0.422, 0.922]), atol=2e-3,
                               rtol=0)  # fmt: skip
    assert lv.alpha[-1] == 1 and lv.alpha_true[-1] < 0.25  # the top level is a marginal EBM


class GaussianH(nn.Module):
    """The exact h of 1-D Gaussian data: h(y, i) = s_i^2 log N(y / alpha_i; mean_i, var_i) (up to a constant)."""

    def __init__(self, levels: NoiseLevels):
        super().__init__()
        self.lv = levels

    def moments(self, i):
        abar, sbar = self.lv.abar[i], self.lv.sigma_bar[i]
        return abar.sqrt() * M, abar * V + sbar**2

    def forward(self, y_tilde, t, y=None):
        i = (t[:, None] - self.lv.t_ebm[None]).abs().argmin(1)
        mean, var = self.moments(i)
        x = y_tilde[:, 0] / self.lv.alpha[i]
        return self.lv.step[i] ** 2 * -((x - mean) ** 2) / (2 * var)


def posterior(model, i: int, x_next: float):
    """Mean and variance of y = alpha x_i given x_{i+1} (Bayes with the Gaussian forward step)."""
    lv = model.levels
    mean, var = model.ebm.moments(torch.tensor(i))
    a = lv.alpha[i]
    if i == lv.levels - 1:
        return mean * a, var * a**2
    prec = 1 / var + lv.alpha_true[i] ** 2 / lv.sigma[i] ** 2
    mp = (mean / var + lv.alpha_true[i] * x_next / lv.sigma[i] ** 2) / prec
    return a * mp, a**2 / prec


def gaussian_model() -> RecoveryModel:
    lv = NoiseLevels(6, b2=4e-4)
    return RecoveryModel(GaussianH(lv), None, lv)


@pytest.mark.parametrize("level", range(6))
def test_conditional_energy_is_marginal_plus_gaussian_term(level):
    """exp(-E(y | x_{i+1})) is the exact posterior p(x_i | x_{i+1}) when h is the exact marginal."""
    model = gaussian_model()
    x_next = 0.7
    mean, var = posterior(model, level, x_next)
    grid = torch.linspace(float(mean - 8 * var.sqrt()), float(mean + 8 * var.sqrt()), 20001)[:, None]
    i = torch.full((len(grid),), level)
    e = model.conditional_energy(grid, torch.full_like(grid, x_next), i)
    p = torch.softmax(-e.double(), 0)
    m_num = (p * grid[:, 0]).sum()
    v_num = (p * (grid[:, 0] - m_num) ** 2).sum()
    assert abs(m_num - mean) < 1e-3 * (1 + abs(mean)) and abs(v_num / var - 1) < 1e-3
    # and the conditional energy minus the marginal one is exactly the Gaussian term
    marginal = -model.h(grid, i) / model.levels.step[level] ** 2
    quad = 0 if level == 5 else (grid[:, 0] - x_next) ** 2 / (2 * model.levels.sigma[level] ** 2)
    torch.testing.assert_close(e - marginal, quad + torch.zeros_like(e))


@pytest.mark.parametrize("level", [2, 5])
def test_langevin_at_a_level_recovers_the_posterior_moments(level):
    model = gaussian_model()
    lv = model.levels
    n, x_next = 4000, 0.7
    mean, var = posterior(model, level, x_next)
    i = torch.full((n,), level)
    xn = torch.full((n, 1), x_next)
    field = EnergyField(lambda v, _t, _y: model.conditional_energy(v, xn, i))
    torch.manual_seed(0)
    out = Langevin(steps=600, step_size=float(lv.eta[level]))(field, xn.clone())
    assert abs(out.x.mean() - mean) < 0.03 * math.sqrt(var)
    assert abs(out.x.var() / var - 1) < 0.06


def test_step_rescaling_keeps_langevin_time(monkeypatch):
    """Fewer steps at sampling time: eta_K = eta K_train / K, so the Langevin time K eta is unchanged."""
    seen = []
    import energen.samplers.recovery as rec

    class Spy(Langevin):
        def __init__(self, **kw):
            seen.append((kw["steps"], kw["step_size"]))
            super().__init__(**kw)

    monkeypatch.setattr(rec, "Langevin", Spy)
    model = gaussian_model()
    noise = PerSampleNoise(range(8), (1,))
    for k in (15, 5, 3):
        seen.clear()
        AncestralSampler(model, langevin_steps=k, train_steps=15)(noise(range(8)), noise=noise)
        top = [s for s in seen][0]
        assert top[0] == k and math.isclose(k * top[1], 15 * float(model.levels.eta[5]), rel_tol=1e-6)


def test_ancestral_sampling_of_the_exact_gaussian_model():
    """Through all six levels with the exact energies, chains long enough to mix give the data's moments.

    (With the image schedule's 15 short steps the chains do not mix on this broad 1-D posterior: trained
    models learn energies for that short-run sampler, exact energies are not.)"""
    lv = NoiseLevels(6, b2=2e-4, constant_c=True)  # small steps: unadjusted Langevin's bias ~1%
    model = RecoveryModel(GaussianH(lv), None, lv)
    n = 4000
    noise = PerSampleNoise(range(n), (1,))
    out = AncestralSampler(model, langevin_steps=400, train_steps=400)(noise(range(n)), noise=noise)
    assert abs(out.x.mean() - M) < 0.05 and abs(out.x.var() / V - 1) < 0.1


@pytest.fixture(scope="module")
def cdrl_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "cdrl"
    train(tiny_config(method="cdrl", steps=30, langevin_steps=5), d, progress=False)
    return d


def test_cdrl_run_samples_with_every_sampler(cdrl_run):
    run = Run(cdrl_run)
    assert run.default_sampler.sampler == "recovery" and run.default_sampler.steps == 5
    x, _ = run.sample(16, seed=3)
    x2, _ = run.sample(16, seed=3, batch_size=5)
    torch.testing.assert_close(x, x2)  # a sample depends on its seed only
    assert x.shape == (16, 2) and torch.isfinite(x).all()
    eta0 = float(run.model.levels.eta[0])
    for name in ("gd", "nag", "ode", "langevin", "smc"):  # the level-0 energy at its Langevin step eta_0
        s = run.field_sampler(name).with_options(steps=10)
        assert s.name == name and math.isclose(s.step_size, eta0)
        x, _ = run.sample(8, settings=s)
        assert x.shape == (8, 2) and torch.isfinite(x).all()
    e = run.energy(x, level=3)
    assert e.shape == (8,)
    with pytest.raises(ConfigError, match="out of range"):
        run.energy(x, level=6)


def test_cdrl_initializer_starts_as_identity_and_learns(cdrl_run):
    run = Run(cdrl_run)
    x = torch.randn(5, 2)
    i = torch.full((5,), 2)
    assert not torch.equal(run.model.propose(x, i), x)  # trained away from the zero-initialised identity
    fresh = __import__("energen.methods", fromlist=["METHODS"]).METHODS.get("cdrl")
    m = fresh.build_model(run.cfg, (2,), 0)
    torch.testing.assert_close(m.propose(x, i), x)


def test_recovery_sampler_rejects_field_runs(tiny_run):
    from energen.samplers.recovery import RecoverySettings

    with pytest.raises(ConfigError, match="drl or cdrl"):
        Run(tiny_run).sample(4, settings=RecoverySettings())


def test_conditional_cdrl_with_guidance_on_digits(tmp_path):
    d = tmp_path / "cond"
    train(tiny_config(method="cdrl", data="digits", conditional=True, steps=4, langevin_steps=2), d, progress=False)
    run = Run(d)
    x, _ = run.sample(6, label=3, cfg_scale=2.0)
    assert x.shape == (6, 1, 8, 8) and torch.isfinite(x).all()
    assert run.energy(x, torch.full((6,), 3), level=0).shape == (6,)


def test_exploding_chains_stop_training_with_the_step(tmp_path):
    """A Langevin step far too large for the data blows the chains up: a clear stop, no checkpoint."""
    from energen.errors import TrainingDiverged

    d = tmp_path / "boom"
    with pytest.raises(TrainingDiverged, match=r"step 1: the Langevin chains blew up.*--langevin-b2"):
        train(tiny_config(method="cdrl", langevin_steps=5, langevin_b2=50.0), d, progress=False)
    assert not (d / "resume.json").exists()


def test_cli_recovery_sampling(cdrl_run, tiny_run, tmp_path, capsys):
    from energen.cli.main import main

    out = tmp_path / "s.npy"
    assert main(["sample", str(cdrl_run), "--n", "6", "--out", str(out), "--langevin-steps", "3"]) == 0
    report = __import__("json").loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["sampler"]["sampler"] == "recovery" and report["sampler"]["steps"] == 3
    assert __import__("numpy").load(out).shape == (6, 2)
    assert main(["sample", str(cdrl_run), "--n", "4", "--out", str(tmp_path / "l.npy"), "--sampler", "langevin"]) == 0
    bad = main(["sample", str(tiny_run), "--n", "4", "--out", str(tmp_path / "e.npy"), "--langevin-steps", "3"])
    assert bad == 2 and "--langevin-steps" in capsys.readouterr().err
