"""The tasks: denoising, in-painting, OOD detection, composition, translation (API and CLI)."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import tiny_config

from energen import Run, train
from energen.cli.main import main
from energen.data.datasets import load_dataset
from energen.errors import ConfigError
from energen.fields import EnergyField, Reframed, TimeShift
from energen.noise_levels import NoiseLevels
from energen.samplers.gradient_descent import GDSettings, GradientDescent
from energen.tasks.composition import LONGER, ClassProduct, Expert, compose, default_settings, product_field
from energen.tasks.denoising import denoise
from energen.tasks.inpainting import inpaint
from energen.tasks.ood import ood_metrics, ood_scores
from energen.tasks.translation import translate
from energen.utils import PerSampleNoise, derived_seed


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs of the methods the tests below need (trained once for the module)."""
    root = tmp_path_factory.mktemp("task-runs")
    specs = {
        "eqm-e": dict(method="eqm-e", steps=60),
        "fm": dict(method="fm", steps=30),
        "cdrl": dict(method="cdrl", steps=20, levels=3, langevin_steps=3),
        "cd": dict(method="cd", steps=30, langevin_steps=5, buffer_size=256),
        "digits": dict(method="eqm", data="digits", conditional=True, steps=30),
    }
    for name, kw in specs.items():
        train(tiny_config(**kw), root / name, progress=False)
    return root


class PointField(torch.nn.Module):
    """The equilibrium field of data concentrated at one point z0 (normalised units): z0 - z."""

    def __init__(self, z0):
        super().__init__()
        self.z0 = z0

    def forward(self, z, t=None, y=None):
        return self.z0 - z


def test_denoising_needs_no_noise_level_with_an_equilibrium_field(tiny_run):
    """Descending an exact equilibrium field restores the clean point whatever the noise std (data units)."""
    run = Run(tiny_run)
    clean = torch.tensor([[1.0, -2.0]])
    run.model = PointField(run.info.normalize(clean))
    settings = GDSettings(steps=200, step_size=0.1)
    for std in (0.1, 1.0, 5.0):
        noisy = clean + std * torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
        restored, out = denoise(run, noisy, settings=settings)
        torch.testing.assert_close(restored, clean.expand(16, 2), atol=1e-6, rtol=0)
        adaptive, out = denoise(run, noisy, settings=replace(settings, tol=1e-3))
        assert (out.steps < 200).all() and (adaptive - clean).norm(dim=1).max() < 0.01


def test_methods_with_a_noise_schedule_need_the_noise_level(runs):
    for name in ("fm", "cdrl"):
        run = Run(runs / name)
        x, _ = load_dataset("8gaussians").reference(8)
        with pytest.raises(ConfigError, match="--noise-std"):
            denoise(run, x)
        y, _ = denoise(run, x, noise_std=0.3)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_level_of_noise_lands_exactly_on_the_level():
    lv = NoiseLevels(6, b2=4e-4)
    for std in (0.05, 0.3, 1.0, 3.0):
        t, extra = lv.level_of_noise(std)
        ratio = float(lv.sigma_bar[t] / lv.abar[t].sqrt())
        assert ratio >= std and (t == 1 or float(lv.sigma_bar[t - 1] / lv.abar[t - 1].sqrt()) < std)
        # sqrt(abar) (x + std eps) + extra eps' has the level's noise variance
        assert math.isclose(float(lv.abar[t]) * std**2 + extra**2, float(lv.sigma_bar[t]) ** 2, rel_tol=1e-5)


def test_time_shift_integrates_the_rest_of_the_path():
    """For a point mass at mu the flow-matching velocity is (mu - x) / (1 - t); Euler from any t0 ends at mu."""
    mu = torch.tensor([[1.5, -0.5]])

    def velocity(x, t, y=None):
        return (mu - x) / (1 - t[:, None])

    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    for t0 in (0.0, 0.4, 0.8):
        start = t0 * mu + (1 - t0) * x0
        out = GradientDescent(steps=10, step_size=0.1)(TimeShift(velocity, t0), start)
        torch.testing.assert_close(out.x, mu.expand(4, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "fm", "cdrl", "cd", "eqm-e"])
def test_inpainting_holds_the_known_entries_and_is_batch_invariant(name, runs, tiny_run):
    run = Run(tiny_run if name == "tiny" else runs / name)
    x, _ = load_dataset("8gaussians").reference(6)
    mask = torch.tensor([1.0, 0.0])  # the first coordinate is known
    a, _ = inpaint(run, x, mask, completions=3, seed=4, rounds=2 if name in ("tiny", "cd", "eqm-e") else 1)
    b, _ = inpaint(run, x, mask, completions=3, seed=4, rounds=2 if name in ("tiny", "cd", "eqm-e") else 1,
                   batch_size=5)  # fmt: skip
    assert a.shape == (18, 2)
    torch.testing.assert_close(a[:, 0], x[:, 0].repeat_interleave(3), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert a[:3, 1].std() > 0  # completions of one input differ


def test_inpainting_rejects_bad_masks_and_extra_rounds(runs, tiny_run):
    x, _ = load_dataset("8gaussians").reference(4)
    with pytest.raises(Exception, match="mask"):
        inpaint(Run(tiny_run), x, torch.ones(3))
    with pytest.raises(Exception, match="only 0"):
        inpaint(Run(tiny_run), x, torch.full((2,), 0.5))
    with pytest.raises(ConfigError, match="rounds"):
        inpaint(Run(runs / "fm"), x, torch.tensor([1.0, 0.0]), rounds=3)


def test_ood_metrics_match_their_closed_forms():
    g = torch.Generator().manual_seed(0)
    s_in, s_ood = torch.randn(20000, generator=g), 1.0 + torch.randn(20000, generator=g)
    m = ood_metrics(s_in, s_ood)
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    assert abs(m["auroc"] - phi(1 / math.sqrt(2))) < 0.01  # P(score_ood > score_in)
    assert abs(m["fpr95"] - phi(1.6449 - 1.0)) < 0.01  # OOD scoring under the in-distribution 95% quantile
    perfect = ood_metrics(torch.zeros(10), torch.ones(10))
    assert perfect["auroc"] == perfect["aupr"] == perfect["aupr_in"] == 1.0 and perfect["fpr95"] == 0.0


def test_ood_scores_per_method(runs, tiny_run):
    x, _ = load_dataset("8gaussians").reference(50)
    far = x + 20.0
    assert ood_scores(Run(tiny_run), far).mean() > ood_scores(Run(tiny_run), x).mean()  # the field norm grows
    with pytest.raises(ConfigError, match="no scalar energy"):
        ood_scores(Run(tiny_run), x, score="energy")
    with pytest.raises(ConfigError, match="time-dependent velocity"):
        ood_scores(Run(runs / "fm"), x)
    for name in ("eqm-e", "cd", "cdrl"):
        s = ood_scores(Run(runs / name), x)
        assert s.shape == (50,) and torch.isfinite(s).all()
    lvl = ood_scores(Run(runs / "cdrl"), x, level=2)
    assert not torch.allclose(lvl, ood_scores(Run(runs / "cdrl"), x))


def test_reframed_field_is_the_gradient_in_the_new_coordinates():
    a, b = torch.tensor([[2.0, 0.5]]), torch.tensor([[0.3, -1.0]])

    def energy(u, t=None, y=None):
        return (u**4).sum(1) + u[:, 0] * u[:, 1]

    z = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = Reframed(EnergyField(energy), a.double(), b.double())(z)
    want = EnergyField(lambda v, t, y: energy(a.double() * v + b.double()))(z)
    torch.testing.assert_close(got, want)


def test_composing_a_run_with_itself_at_half_weights_is_the_run(tiny_run):
    run = Run(tiny_run)
    x, _ = compose([Expert(run, weight=0.5), Expert(Run(tiny_run), weight=0.5)], 20, seed=3,
                   settings=run.default_sampler)  # fmt: skip
    ref, _ = run.sample(20, seed=3)
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)
    assert default_settings(run).steps == LONGER * run.default_sampler.steps  # gd: a longer descent by default


def test_composition_reframes_runs_of_other_data(runs, tiny_run):
    frame = Run(tiny_run)
    other = Run(runs / "eqm-e")  # same data set, so the same normalisation: no reframing
    assert product_field([Expert(other)], frame).fields[0] is other.field
    with pytest.raises(ConfigError, match="time-dependent velocity"):
        compose([Expert(frame), Expert(Run(runs / "fm"))], 4)
    with pytest.raises(ConfigError, match="shape"):
        compose([Expert(frame), Expert(Run(runs / "digits"))], 4)


def test_translation_keeps_more_of_the_source_at_lower_strength(runs):
    run = Run(runs / "digits")
    x, _ = load_dataset("digits").reference(40)
    dist = [((translate(run, x, 3, strength=s, seed=1)[0] - x) ** 2).mean().item() for s in (0.1, 0.5, 0.9)]
    assert dist[0] < dist[1] < dist[2]
    with pytest.raises(ConfigError, match="strength"):
        translate(run, x, 3, strength=1.0)
    with pytest.raises(ConfigError, match="out of range"):
        translate(run, x, 10)


def test_cli_tasks_write_outputs_and_pictures(runs, tiny_run, tmp_path, capsys):
    x, y = load_dataset("digits").reference(12)
    digits = tmp_path / "digits.npy"
    np.save(digits, x[:, 0].numpy())  # the user's layout: N x 8 x 8
    mask = np.ones((8, 8), dtype=np.float32)
    mask[4:] = 0
    np.save(tmp_path / "mask.npy", mask)
    run = runs / "digits"
    assert run_cli("denoise", run, "--input", digits, "--out", tmp_path / "d.npy", "--png", tmp_path / "d.png") == 0
    assert run_cli("inpaint", run, "--input", digits, "--mask", tmp_path / "mask.npy", "--out", tmp_path / "i.npy",
                   "--completions", 2, "--rounds", 2, "--png", tmp_path / "i.png") == 0  # fmt: skip
    assert run_cli("translate", run, "--input", digits, "--class", 7, "--out", tmp_path / "t.npz",
                   "--png", tmp_path / "t.png") == 0  # fmt: skip
    assert run_cli("ood", run, "--in", digits, "--ood", tmp_path / "d.npy", "--scores", tmp_path / "s.npz",
                   "--png", tmp_path / "s.png") == 0  # fmt: skip
    assert run_cli("compose", f"{run}:1", f"{run}:7", "--weights", 1, 1, "--n", 10, "--out", tmp_path / "c.npy") == 0
    out = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert np.load(tmp_path / "d.npy").shape == (12, 8, 8)
    completions = np.load(tmp_path / "i.npy")
    assert completions.shape == (24, 8, 8)
    np.testing.assert_allclose(completions[::2, :4], x[:, 0, :4].numpy(), atol=1e-4)
    assert np.load(tmp_path / "t.npz")["arr_0"].shape == (12, 8, 8, 3)
    assert {"auroc", "aupr", "fpr95", "in", "ood"} <= set(out[3])
    assert set(np.load(tmp_path / "s.npz")) == {"in", "ood"}
    assert np.load(tmp_path / "c.npy").shape == (10, 8, 8) and out[4]["experts"][1].endswith(":7")
    for name in ("d", "i", "t", "s"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    pts = tmp_path / "pts.npy"
    np.save(pts, load_dataset("8gaussians").reference(30)[0].numpy())
    assert run_cli("compose", tiny_run, runs / "eqm-e", "--n", 50, "--out", tmp_path / "c2.npy",
                   "--png", tmp_path / "c2.png") == 0  # fmt: skip
    assert (tmp_path / "c2.png").stat().st_size > 1000


def test_cli_task_errors_are_one_line_and_keep_existing_files(runs, tiny_run, tmp_path, capsys):
    pts = tmp_path / "pts.npy"
    np.save(pts, load_dataset("8gaussians").reference(30)[0].numpy())
    (tmp_path / "keep.npy").write_bytes(b"precious")
    np.save(tmp_path / "badmask.npy", np.ones(3))
    cases = [
        ("denoise", runs / "fm", "--input", pts, "--out", tmp_path / "a.npy"),  # needs --noise-std
        ("denoise", tiny_run, "--input", pts, "--out", tmp_path / "keep.npy"),  # exists
        ("inpaint", tiny_run, "--input", pts, "--mask", tmp_path / "badmask.npy", "--out", tmp_path / "b.npy"),
        ("ood", runs / "fm", "--in", pts),
        ("ood", tiny_run, "--in", pts, "--score", "energy"),
        ("compose", tiny_run, runs / "digits", "--n", 3, "--out", tmp_path / "c.npy"),
        ("compose", tiny_run, "--weights", 1, 2, "--n", 3, "--out", tmp_path / "c.npy"),
        ("translate", tiny_run, "--input", pts, "--class", 1, "--out", tmp_path / "t.npy"),  # unconditional
        ("denoise", tiny_run, "--input", tmp_path / "missing.npy", "--out", tmp_path / "a.npy"),
    ]
    for case in cases:
        assert run_cli(*case) != 0, case
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(cases) and all(line.startswith("energen") for line in err), err
    assert (tmp_path / "keep.npy").read_bytes() == b"precious"
    assert not (tmp_path / "a.npy").exists() and not (tmp_path / "c.npy").exists()
    with pytest.raises(SystemExit) as e:
        main(["translate", str(tiny_run), "--input", str(pts), "--out", str(tmp_path / "t.npy")])  # no --class
    assert e.value.code == 2


def test_derived_streams_do_not_repeat_the_chains_noise():
    """torch keeps the low 32 bits of a seed; derived streams must differ from seed + i within them."""
    seed, n = 7, 64
    chains = PerSampleNoise(range(seed, seed + n), (3,))(range(n))
    for stream in range(1, 8):
        first = derived_seed(seed, stream)
        other = PerSampleNoise(range(first, first + n), (3,))(range(n))
        assert not any(torch.equal(a, b) for a in chains for b in other)
    assert derived_seed(seed, 0) == seed and 0 <= derived_seed(2**40, 3) < 2**32


def test_class_product_counts_the_prior_once(runs):
    run = Run(runs / "digits")
    z = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def f(c):
        return run.field(z, None, torch.full((5,), c))

    got = ClassProduct(run, [2, 7], [1.0, 0.5])(z)
    torch.testing.assert_close(got, f(10) + (f(2) - f(10)) + 0.5 * (f(7) - f(10)), atol=1e-5, rtol=1e-5)
    one = product_field([Expert(run, 3, 2.0)], run)(z)  # one class at weight w: classifier-free guidance
    torch.testing.assert_close(one, f(10) + 2.0 * (f(3) - f(10)), atol=1e-5, rtol=1e-5)
