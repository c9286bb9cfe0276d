import json
import subprocess
import sys

import numpy as np
import pytest

from energen.cli.main import main


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--out", "x", "--bogus"],
        ["train", "--out", "x", "--method", "nope"],
        ["train", "--out", "x", "--steps", "ten"],
        ["sample", "r", "--n", "0", "--out", "a.npy"],
        ["sample", "r", "--n", "5", "--out", "a.npy", "--sampler", "nope"],
        ["nope"],
    ],
)
def test_bad_flags_exit_2(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()[-1]) > 0


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


def test_smc_keeps_one_langevin_step_whatever_its_length():
    """--steps on smc lengthens the path at the same step s; switching from gd (eta) gives s = sqrt(2 eta);
    other samplers keep their total time."""
    from argparse import Namespace
    from types import SimpleNamespace

    from energen.cli.main import _sampler_settings
    from energen.samplers.settings import SamplerSettings

    flags = dict.fromkeys(("sampler", "langevin_steps", "steps", "step_size", "tol", "momentum", "noise",
                           "ode_method", "temperature"))  # fmt: skip

    def settings(default, **given):
        return _sampler_settings(SimpleNamespace(default_sampler=default), Namespace(**{**flags, **given}))

    smc = SamplerSettings(sampler="smc", steps=200, step_size=0.06)
    assert (settings(smc, steps=50).steps, settings(smc, steps=50).step_size) == (50, 0.06)
    gd = SamplerSettings(sampler="gd", steps=100, step_size=0.02)
    assert settings(gd, sampler="smc").step_size == pytest.approx(0.2)
    assert settings(gd, sampler="smc", steps=400).step_size == pytest.approx(0.2)
    assert settings(gd, steps=400).step_size == pytest.approx(0.005)
    langevin = SamplerSettings(sampler="langevin", steps=100, step_size=0.1)
    assert settings(langevin, sampler="smc", steps=10).step_size == 0.1
