"""One step unit: the step size is eta for every sampler, in flags, settings, sampler.json and the samplers."""

import json
import math
import shutil
from types import SimpleNamespace

import pytest
import torch

from energen import Run
from energen.cli.main import build_parser, main
from energen.cli.sampler_options import sampler_settings
from energen.errors import ConfigError
from energen.samplers.gradient_descent import GDSettings
from energen.samplers.langevin import Langevin, LangevinSettings
from energen.samplers.recovery import RecoverySettings
from energen.samplers.settings import SamplerSettings
from energen.samplers.smc import SequentialMonteCarlo, SMCSettings


def flags(*argv: str):
    """The namespace ``energen sample`` parses from these sampler flags."""
    return build_parser().parse_args(["sample", "RUN", "--n", "1", "--out", "x.npy", *argv])


def zero_field(x, t=None, y=None):
    return torch.zeros_like(x)


def one_step_variance(sampler, n=20_000) -> float:
    torch.manual_seed(0)
    return float(sampler(zero_field, torch.zeros(n, 1)).x.var())


def test_langevin_step_size_is_eta():
    """x <- x + eta f + sqrt(2 eta T) z: one step on a zero field has variance 2 eta T."""
    eta = 0.01
    settings = sampler_settings(
        SimpleNamespace(default_sampler=LangevinSettings()), flags("--steps", "1", "--step-size", "0.01")
    )
    assert settings.step_size == eta
    assert one_step_variance(settings.build()) == pytest.approx(2 * eta, rel=0.03)
    hot = settings.with_options(temperature=4.0).build()
    assert one_step_variance(hot) == pytest.approx(2 * eta * 4.0, rel=0.03)


def test_smc_step_size_is_eta_of_its_proposal():
    """SMC's Metropolis-adjusted move proposes x + eta f + sqrt(2 eta) z (on a flat energy every move is taken)."""
    eta = 0.02
    settings = sampler_settings(SimpleNamespace(default_sampler=SMCSettings(steps=50, step_size=0.1)),
                                flags("--steps", "1", "--step-size", str(eta)))  # fmt: skip
    sampler = settings.build()
    assert isinstance(sampler, SequentialMonteCarlo) and sampler.step_size == eta
    torch.manual_seed(0)
    x = sampler(zero_field, torch.zeros(20_000, 1)).x
    assert float(x.var()) == pytest.approx(2 * eta, rel=0.05)


def test_more_steps_keep_the_total_time_of_a_langevin_default():
    """``--steps 2K`` on a Langevin default halves eta, so eta K (the promise of --steps) is unchanged."""
    run = SimpleNamespace(default_sampler=LangevinSettings(steps=200, step_size=0.002))
    new = sampler_settings(run, flags("--steps", "400"))
    assert new.steps == 400 and new.steps * new.step_size == pytest.approx(200 * 0.002)
    gd = sampler_settings(
        SimpleNamespace(default_sampler=GDSettings(steps=100, step_size=0.01)), flags("--steps", "50")
    )
    assert gd.steps * gd.step_size == pytest.approx(1.0)
    smc = sampler_settings(
        SimpleNamespace(default_sampler=SMCSettings(steps=200, step_size=0.002)), flags("--steps", "50")
    )
    assert smc.step_size == 0.002  # smc: a shorter path at the same eta


def test_a_flag_the_sampler_does_not_use_is_refused():
    gd = SimpleNamespace(default_sampler=GDSettings())
    with pytest.raises(ConfigError, match="--momentum: sampler 'gd' does not use it"):
        sampler_settings(gd, flags("--momentum", "0.5"))
    smc = SimpleNamespace(default_sampler=SMCSettings())
    with pytest.raises(ConfigError, match="--tol: sampler 'smc' does not use it"):
        sampler_settings(smc, flags("--tol", "0.1"))
    recovery = SimpleNamespace(default_sampler=RecoverySettings(steps=15))
    with pytest.raises(ConfigError, match="--step-size: sampler 'recovery' does not use it"):
        sampler_settings(recovery, flags("--step-size", "0.1"))
    with pytest.raises(ConfigError, match="--noise"):
        sampler_settings(SimpleNamespace(default_sampler=LangevinSettings()), flags("--noise", "0.1"))
    assert sampler_settings(recovery, flags("--steps", "5")).steps == 5


def test_the_cli_refuses_an_unused_sampler_flag_in_one_line(tiny_run, tmp_path, capsys):
    out = tmp_path / "x.npy"
    assert main(["sample", str(tiny_run), "--n", "4", "--out", str(out), "--momentum", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--momentum" in err and not out.exists()
    assert main(["sample", str(tiny_run), "--n", "4", "--out", str(out), "--sampler", "smc", "--tol", "0.1"]) == 2
    assert main(["sample", str(tiny_run), "--n", "4", "--out", str(out), "--sampler", "nag", "--momentum", "0.5"]) == 0


def test_a_format_1_sampler_json_is_migrated_to_eta(tiny_run, tmp_path):
    """sampler.json written with s = sqrt(2 eta) and a noise multiplier tau for Langevin samples as it did:
    x + (s^2 / 2) f + tau s z."""
    s, tau = 0.1, 0.5
    old = {"sampler": "langevin", "steps": 30, "step_size": s, "tol": None, "momentum": 0.3, "noise": 0.0,
           "ode_method": "heun2", "temperature": tau, "grad_clip": None, "clamp": [-3.0, 3.0], "extra": {}}  # fmt: skip
    d = tmp_path / "old"
    shutil.copytree(tiny_run, d)
    (d / "sampler.json").write_text(json.dumps(old))
    settings = Run(d).default_sampler
    assert isinstance(settings, LangevinSettings)
    assert settings.step_size == pytest.approx(s**2 / 2) and settings.temperature == pytest.approx(tau**2)
    assert settings.clamp == (-3.0, 3.0) and settings.steps == 30
    assert one_step_variance(settings.with_options(steps=1).build()) == pytest.approx((tau * s) ** 2, rel=0.03)
    smc = SamplerSettings.from_json(old | {"sampler": "smc"})
    assert smc.step_size == pytest.approx(s**2 / 2) and smc.box == (-3.0, 3.0)
    assert SamplerSettings.from_json(smc.to_json()) == smc  # format 2 reads back as written


def test_langevin_samples_a_gaussian_at_its_temperature():
    """E = x^2 / 2: Langevin at temperature T samples N(0, T) (small eta)."""
    from energen.fields import EnergyField

    field = EnergyField(lambda x, t=None, y=None: x.pow(2).sum(1) / 2)
    torch.manual_seed(0)
    x = Langevin(steps=400, step_size=0.01, temperature=0.25)(field, torch.randn(8000, 1)).x
    assert float(x.var()) == pytest.approx(0.25 / (1 - 0.01 / 2), rel=0.06)
    assert math.isfinite(float(x.mean())) and abs(float(x.mean())) < 0.02
