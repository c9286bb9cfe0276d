import ast
import json
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from energen.cli.main import build_parser, main
from energen.config import GROUPS, TrainConfig
from energen.errors import ConfigError, DataError


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "x", "--bogus"],
        ["train", "--out", "x", "--method", "nope"],
        ["train", "--out", "x", "--steps", "ten"],
        ["train", "--out", "x", "--energy", "cosine"],
        ["train", "--out", "x", "--buffer-init", "zeros"],
        ["train", "--out", "x", "--model", "nope"],
        ["train", "--out", "x", "--no-lr"],
        ["sample", "r", "--n", "0", "--out", "a.npy"],
        ["sample", "r", "--n", "5", "--out", "a.npy", "--sampler", "nope"],
        ["nope"],
    ],
)
def test_bad_flags_exit_2(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("energen") and "error: " in err[0]


def test_bad_values_and_inputs_give_one_line(tmp_path, capsys):
    assert run_cli("train", "--out", tmp_path / "r", "--lr", "-1") == 2
    assert run_cli("train", "--out", tmp_path / "r", "--data", tmp_path / "missing.npy", "--steps", 2) == 2
    assert run_cli("sample", tmp_path / "nothing", "--n", 3, "--out", tmp_path / "s.npy") == 2
    (tmp_path / "c.yaml").write_text("lr: 0.01\nnot_a_key: 3\n")
    assert run_cli("train", "--out", tmp_path / "r", "--config", tmp_path / "c.yaml") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("energen") for line in err)
    assert "not_a_key" in err[-1]
    assert not (tmp_path / "r").exists()


def test_train_sample_eval_plot(tmp_path, capsys):
    run = tmp_path / "run"
    (tmp_path / "c.json").write_text(
        json.dumps({"model": "mlp-small", "batch-size": 64, "steps": 40, "calibrate-samples": 200})
    )
    assert run_cli("train", "--method", "eqm-e", "--data", "moons", "--out", run, "--config", tmp_path / "c.json",
                   "--ckpt-every", 20, "--quiet") == 0  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == "mlp-small" and cfg["steps"] == 40 and cfg["method"] == "eqm-e"
    assert {"model.safetensors", "resume.json", "log.csv", "data.json", "sampler.json"} <= {
        p.name for p in run.iterdir()
    }
    capsys.readouterr()
    for sampler in ("gd", "nag", "ode", "smc"):  # smc weighs by EqM-E's own energy
        out = tmp_path / f"{sampler}.npy"
        assert run_cli("sample", run, "--n", 50, "--out", out, "--sampler", sampler, "--steps", 20) == 0
        assert np.load(out).shape == (50, 2)
    assert run_cli("sample", run, "--n", 50, "--out", tmp_path / "tol.npy", "--tol", 0.5) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mean_steps"] <= 100
    before = (tmp_path / "gd.npy").read_bytes()
    assert run_cli("sample", run, "--n", 5, "--out", tmp_path / "gd.npy") == 2  # never overwrite
    assert (tmp_path / "gd.npy").read_bytes() == before
    capsys.readouterr()
    assert run_cli("eval", tmp_path / "gd.npy", "--data", "moons") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"sliced_w1", "mmd"} <= metrics.keys()
    assert run_cli("plot", run, "--out", tmp_path / "p.png", "--n", 200) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert run_cli("sample", run, "--n", 5, "--out", tmp_path / "x.npy", "--class", 1) == 2  # unconditional run


def test_conditional_digits_with_guidance(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("train", "--data", "digits", "--conditional", "--steps", 20, "--batch-size", 32,
                   "--model", "mlp-small", "--out", run, "--quiet", "--no-calibrate") == 0  # fmt: skip
    assert run_cli("sample", run, "--n", 12, "--out", tmp_path / "s.npz", "--class", 3, "--cfg", 2.0) == 0
    assert np.load(tmp_path / "s.npz")["arr_0"].shape == (12, 8, 8, 3)
    assert run_cli("sample", run, "--n", 4, "--out", tmp_path / "png") == 0
    capsys.readouterr()
    assert run_cli("eval", tmp_path / "s.npz", "--data", "digits", "--class", 3) == 0
    m = json.loads(capsys.readouterr().out)
    assert 0 <= m["class_accuracy"] <= 1 and m["fd_digits"] > 0
    assert run_cli("sample", run, "--n", 4, "--out", tmp_path / "y.npy", "--class", 10) == 2


def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", "-m",
           "energen.cli", "train", "--data", "checkerboard", "--steps", "20", "--batch-size", "64", "--model",
           "mlp-small", "--out", str(out), "--quiet", "--no-calibrate", "--ckpt-every", "10"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "model.safetensors").exists()
    st = json.loads((out / "resume.json").read_text())
    assert st["step"] == 20
    from safetensors.torch import load_file

    rng = load_file(str(out / st["tensors"]))
    assert {"rng.generator.0", "rng.generator.1"} <= rng.keys()


def test_smc_keeps_its_eta_whatever_its_length():
    """--steps on smc lengthens the path at the same eta; switching samplers keeps eta (one unit for all); other
    samplers keep their total time eta*K."""
    from argparse import Namespace
    from types import SimpleNamespace

    from energen.cli.sampler_options import sampler_settings
    from energen.samplers.gradient_descent import GDSettings
    from energen.samplers.langevin import LangevinSettings
    from energen.samplers.smc import SMCSettings

    flags = dict.fromkeys(("sampler", "langevin_steps", "steps", "step_size", "tol", "momentum", "noise",
                           "ode_method", "temperature"))  # fmt: skip

    def settings(default, **given):
        return sampler_settings(SimpleNamespace(default_sampler=default,
                                                switch_sampler=lambda s, name: s.switch(name)),
                                Namespace(**{**flags, **given}))  # fmt: skip

    smc = SMCSettings(steps=200, step_size=0.06)
    assert (settings(smc, steps=50).steps, settings(smc, steps=50).step_size) == (50, 0.06)
    gd = GDSettings(steps=100, step_size=0.02)
    assert settings(gd, sampler="smc").step_size == 0.02
    assert settings(gd, sampler="smc", steps=400).step_size == 0.02
    assert settings(gd, steps=400).step_size == pytest.approx(0.005)
    assert settings(LangevinSettings(steps=100, step_size=0.1), sampler="smc", steps=10).step_size == 0.1


def test_train_help_shows_every_option_with_its_default_by_group(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    text = " ".join(out.split())  # argparse wraps the help lines
    assert text.count("(default: ") >= len(fields(TrainConfig)) >= 25
    for f in fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in out
    headings = [out.index(f"\n{title}:\n") for title in GROUPS]
    assert headings == sorted(headings)
    section = out[headings[GROUPS.index("contrastive divergence (cd)")] :]
    assert "--buffer-size" in section.split("\n\n")[0]
    assert "--lr LR AdamW learning rate (default: 0.001)" in text
    assert "(default: auto: cdrl 15, drl 30, cd 20)" in text and "--tf32, --no-tf32" in text


@pytest.mark.parametrize(
    "flag, value, message",
    [("--lr", "-1", "lr must be > 0"), ("--label-dropout", "1.5", "label-dropout must be in [0, 1)"),
     ("--calibrate-samples", "10", "calibrate-samples must be >= 100"),
     ("--adam-beta2", "1", "adam-beta2 must be in [0, 1)")],
)  # fmt: skip
def test_out_of_range_train_options_fail_while_parsing(tmp_path, capsys, flag, value, message):
    with pytest.raises(ConfigError, match="must be"):
        build_parser().parse_args(["train", "--out", "x", flag, value])
    assert run_cli("train", "--out", tmp_path / "r", "--steps", 3, flag, value) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"energen train: error: {message}, got {value}"]
    assert not (tmp_path / "r").exists()


def test_config_files_are_checked_like_flags(tmp_path, capsys):
    for bad, message in [({"model": "nope"}, "unknown model 'nope'"), ({"c_schedule": "cosine"}, "unknown c(gamma)"),
                         ({"label-dropout": 1.5}, "label-dropout must be in [0, 1)"),
                         ({"energy": "cosine"}, "energy must be one of dot, l2")]:  # fmt: skip
        (tmp_path / "c.json").write_text(json.dumps(bad))
        assert run_cli("train", "--out", tmp_path / "r", "--config", tmp_path / "c.json") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("energen train: error: ") and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_benchmarks_do_not_import_the_cli():
    bench = Path(__file__).parents[2] / "benchmarks"
    scripts = sorted(bench.glob("*.py"))
    assert any(p.name == "cd.py" for p in scripts)
    for p in scripts:
        tree = ast.parse(p.read_text())
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in names if m.startswith("energen.cli")], p.name
        assert "build_parser" not in p.read_text(), p.name


def test_generate_is_what_sample_writes(tiny_run, tmp_path, capsys):
    from energen.generation import generate
    from energen.run import Run

    summary = generate(tiny_run, 30, tmp_path / "g.npy", seed=4)
    assert summary["n"] == 30 and summary["processes"] == 1 and summary["out"] == str(tmp_path / "g.npy")
    x, _ = Run(tiny_run).sample(30, seed=4)
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), x.numpy())
    assert run_cli("sample", tiny_run, "--n", 30, "--seed", 4, "--out", tmp_path / "c.npy") == 0
    printed = json.loads(capsys.readouterr().out)

    def without_notes(d):  # the CLI's settings may drop the run's calibration notes (extra)
        return d | {"out": None, "sampler": {k: v for k, v in d["sampler"].items() if k != "extra"}}

    assert without_notes(printed) == without_notes(summary) and printed["out"] == str(tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.load(tmp_path / "g.npy"))
    with pytest.raises(ConfigError, match="already exists"):
        generate(tiny_run, 3, tmp_path / "g.npy")
    with pytest.raises(DataError, match="for images"):
        generate(tiny_run, 3, tmp_path / "g.npz")
    short = generate(tiny_run, 5, tmp_path / "k.npy", settings=lambda run: replace(run.default_sampler, steps=3))
    assert short["sampler"]["steps"] == 3 and short["max_steps"] <= 3


def test_sample_starts_from_the_points_of_a_file(tiny_run, tmp_path, capsys):
    """``--start FILE``: the sampler runs from given points (data coordinates), as a manual run of it does."""
    import torch

    from energen import Run
    from energen.samplers.gradient_descent import GradientDescent

    run = Run(tiny_run)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(3)) * 2
    np.save(tmp_path / "x0.npy", x0.numpy())
    args = ["sample", str(tiny_run), "--n", "8", "--start", str(tmp_path / "x0.npy"), "--sampler", "gd", "--steps", "7",
            "--step-size", "0.01", "--noise", "0", "--batch-size", "3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "y.npy")]) == 0
    z = GradientDescent(steps=7, step_size=0.01)(run.field, run.info.normalize(x0)).x
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), run.info.denormalize(z).numpy(), rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main([*args[:3], "9", *args[4:], "--out", str(tmp_path / "w.npy")]) == 2  # 8 starts for 9 samples
    assert "holds 8 starts" in capsys.readouterr().err and not (tmp_path / "w.npy").exists()
