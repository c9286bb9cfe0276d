"""A run whose calibration was killed: sampling warns, ``energen calibrate`` restores the same ``sampler.json``."""

import json
import shutil

import pytest
from conftest import tiny_config

from energen import train
from energen.cli.main import main
from energen.run import Run


@pytest.fixture(scope="module")
def eqm_run(tmp_path_factory):
    """A 20-step EqM run calibrated on 100 held-out samples (a few seconds)."""
    d = tmp_path_factory.mktemp("recalibrate") / "eqm"
    train(tiny_config(calibrate=True, calibrate_samples=100), d, progress=False)
    return d


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_killed_calibration_warns_until_recalibrated(eqm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(eqm_run, run)
    trained = json.loads((run / "sampler.json").read_text())
    (run / "sampler.json").unlink()  # as a kill during the calibration leaves it
    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "a.npy")]) == 0
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith(f"energen: warning: {run} has no sampler.json")
    assert f"energen calibrate {run}" in err[0] and "uncalibrated default gd, 100 steps of eta 0.005" in err[0]

    assert main(["calibrate", str(run)]) == 0  # the run's own calibrate_samples (100): the choice training made
    assert json.loads((run / "sampler.json").read_text()) == trained
    assert json.loads(capsys.readouterr().out)["best"] == trained["extra"]["calibration"]["best"]

    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "b.npy")]) == 0
    assert _err_lines(capsys) == []
    assert not Run(run).uncalibrated


def test_uncalibrated_by_choice_is_silent(eqm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(eqm_run, run)
    (run / "sampler.json").unlink()
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(cfg | {"calibrate": False}))  # as --no-calibrate writes it
    r = Run(run)
    assert not r.uncalibrated and r.default_sampler.step_size == 0.005
    assert _err_lines(capsys) == []


@pytest.mark.parametrize("case", ["cd", "no-model", "few-samples"])
def test_calibrate_refuses_in_one_line(eqm_run, tmp_path, capsys, case):
    run = tmp_path / "run"
    if case == "cd":
        train(tiny_config(method="cd", steps=2, ckpt_every=1, langevin_steps=2, buffer_size=64), run, progress=False)
    else:
        shutil.copytree(eqm_run, run)
        if case == "no-model":
            (run / "model.safetensors").unlink()
    before = sorted(p.name for p in run.iterdir())
    args = ["calibrate", str(run)] + (["--samples", "50"] if case == "few-samples" else [])
    assert main(args) == 2
    err = _err_lines(capsys)
    expected = {"cd": "cd runs have no budget to calibrate", "no-model": "has no model.safetensors",
                "few-samples": "--samples must be >= 100, got 50"}  # fmt: skip
    assert len(err) == 1 and err[0].startswith("energen calibrate: error: ") and expected[case] in err[0]
    assert sorted(p.name for p in run.iterdir()) == before
