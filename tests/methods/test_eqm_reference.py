"""EqM against numbers computed by the reference repository's own code (raywang4/EqM @ fe3b689).

``tests/fixtures/eqm_reference/`` (its README says what each array is and which reference function made it):
a tiny reference-format model (4x8x8 latents, patch 2, width 64, depth 2, 4 heads, 10 classes, learn_sigma),
its forward outputs, targets, per-sample losses with and without the dispersive term, EqM-E energies and fields,
one guided evaluation, and 249-update GD / NAG trajectories with and without guidance 1.5. The model is saved
here in the reference's checkpoint format (model, ema, opt, argparse ``args``) and goes through ``energen
convert``; every number below comes out of energen's own code paths.

Tolerances: the fixture README's (1e-5 on single evaluations, 1e-6 relative on losses and targets); 2e-4 on the
249-update states, below the 6e-4 to 1.1e-3 by which guiding all four channels, or a 250th update, moves them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from energen import Run
from energen.cli.main import main
from energen.fields import GuidedField
from energen.interpolants import WEIGHTINGS
from energen.losses.eqm import FieldMatching
from energen.samplers.gradient_descent import GDSettings
from energen.samplers.nesterov import NAGSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eqm_reference"
NULL = 10


@pytest.fixture(scope="module")
def case() -> dict[str, torch.Tensor]:
    with np.load(FIXTURES / "cases.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


def reference_checkpoint(path: Path, ebm: str = "none") -> Path:
    """The fixture weights as the reference's train.py saves them: model, ema, AdamW state, argparse args."""
    sd = load_file(FIXTURES / "tiny_s2.safetensors")
    params = [torch.nn.Parameter(v.clone()) for k, v in sd.items() if k != "pos_embed"]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    sum(p.sum() for p in params).backward()
    opt.step()
    args = argparse.Namespace(model="EqM-S/2", image_size=64, num_classes=10, ebm=ebm, uncond=True, disp=False,
                              cfg_scale=4.0, vae="ema", global_batch_size=256)  # fmt: skip
    torch.save({"model": sd, "ema": sd, "opt": opt.state_dict(), "args": args}, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Converted runs of the fixture model: implicit field, and the dot and l2 energies (read from args.ebm)."""
    root = tmp_path_factory.mktemp("eqm_reference")
    out = {}
    for ebm in ("none", "dot", "l2"):
        ckpt = reference_checkpoint(root / f"{ebm}.pt", ebm)
        out[ebm] = root / f"run-{ebm}"
        assert main(["convert", str(ckpt), "--out", str(out[ebm]), "--num-heads", "4"]) == 0
    return out


def test_convert_reads_the_architecture_and_the_energy_off_the_checkpoint(runs, tmp_path, capsys):
    cfg = json.loads((runs["none"] / "config.json").read_text())
    assert cfg["model"] == "DiT-2x64-h4/2" and cfg["method"] == "eqm"
    assert json.loads((runs["dot"] / "config.json").read_text())["energy"] == "dot"
    assert json.loads((runs["l2"] / "config.json").read_text())["method"] == "eqm-e"
    sampler = json.loads((runs["none"] / "sampler.json").read_text())
    assert [sampler[k] for k in ("sampler", "steps", "step_size", "momentum")] == ["nag", 249, 0.0017, 0.3]
    assert sampler["tol"] is None and sampler["noise"] == 0
    # the heads are not in the shapes: without --num-heads (and no preset of this size) one clear line, exit 2
    ckpt = reference_checkpoint(tmp_path / "c.pt")
    capsys.readouterr()
    assert main(["convert", str(ckpt), "--out", str(tmp_path / "r")]) == 2
    assert "--num-heads" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_forward_output_matches_the_reference(runs, case):
    run = Run(runs["none"])
    with torch.no_grad():
        out = run.field(case["xt"], None, case["y"])
    torch.testing.assert_close(out, case["out"][:, :4], rtol=0, atol=1e-5)


def test_targets_losses_and_dispersive_term_match_the_reference(runs, case):
    run = Run(runs["none"])
    c = WEIGHTINGS.get("truncated")(scale=4.0, a=0.8)(case["t"])
    torch.testing.assert_close(c, case["c"], rtol=1e-6, atol=0)
    args = dict(time_conditioned=False, label_dropout=0.1, num_classes=10, gamma_power=1.0)
    objective = FieldMatching(weighting=WEIGHTINGS.get("truncated")(scale=4.0, a=0.8), **args)
    x, eps, t = case["x"], case["eps"], case["t"]
    ps = objective.path.sample(x, eps, t)
    torch.testing.assert_close(ps.x_t, case["xt"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ps.velocity * c[:, None, None, None], case["target"], rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        plain = objective.losses_at(run.model, x, case["y"], eps, t).per_sample
        torch.testing.assert_close(plain, case["loss_per_sample"], rtol=1e-6, atol=1e-5)
        disp = FieldMatching(weighting=objective.weighting, dispersive=0.5, **args)
        out = disp.losses_at(run.model, x, case["y"], eps, t)
    features = run.model.features
    torch.testing.assert_close(features, case["disp_features"], rtol=0, atol=1e-5)  # flattened, not token-averaged
    assert out.stats["dispersive"] == pytest.approx(float(case["disp"]), abs=1e-6)
    torch.testing.assert_close(out.per_sample, case["loss_disp_per_sample"], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("energy", ["dot", "l2"])
def test_explicit_energies_and_their_fields_match_the_reference(runs, case, energy):
    run = Run(runs[energy])
    xt, y = case["xt"], case["y"]
    torch.testing.assert_close(run.model.energy(xt, None, y).detach(), case[f"E_{energy}"], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(run.field(xt, None, y), case[f"field_{energy}"], rtol=0, atol=1e-5)
    # the data-coordinate entry point: latents / 0.18215 in, the same energy out
    torch.testing.assert_close(run.energy(run.info.denormalize(xt), y), case[f"E_{energy}"], rtol=1e-5, atol=1e-4)


def test_guidance_follows_the_reference_rule_on_latents(runs, case):
    run = Run(runs["none"])
    assert run.guidance == "reference"
    z0, ys = case["z0"], case["y_s"]
    with torch.no_grad():
        guided = run.guided_field(1.5)(z0, None, ys)
        every = GuidedField(run.field, scale=1.5, null_label=NULL, rule="all")(z0, None, ys)
        below = GuidedField(run.field, scale=0.5, null_label=NULL, rule="reference")(z0, None, ys)
        cond = run.field(z0, None, ys)
    torch.testing.assert_close(guided, case["cfg_field_z0"], rtol=0, atol=1e-5)
    assert (every[:, 3] - case["cfg_field_z0"][:, 3]).abs().max() > 5e-4  # the other rule is told apart
    torch.testing.assert_close(every[:, :3], guided[:, :3], rtol=0, atol=1e-6)
    torch.testing.assert_close(below, cond, rtol=0, atol=0)  # the reference guides only for w > 1


@pytest.mark.parametrize(
    ("name", "settings", "scale"),
    [
        ("gd", GDSettings(steps=249, step_size=0.003), 1.0),
        ("nag", NAGSettings(steps=249, step_size=0.0017, momentum=0.3), 1.0),
        ("gd_cfg", GDSettings(steps=249, step_size=0.003), 1.5),
        ("nag_cfg", NAGSettings(steps=249, step_size=0.0017, momentum=0.3), 1.5),
    ],
)
def test_249_update_trajectories_match_the_reference(runs, case, name, settings, scale):
    run = Run(runs["none"])
    z, out = run.chains(8, x0=case["z0"], labels=case["y_s"], settings=settings, cfg_scale=scale, record=(10,))
    assert out.nfe == 249
    torch.testing.assert_close(out.snapshots[10], case[f"{name}_after10"], rtol=0, atol=1e-5)
    torch.testing.assert_close(z, case[f"{name}_final"], rtol=0, atol=5e-5)


@pytest.mark.parametrize(
    ("name", "k", "flags"),
    [
        ("gd_final", 3, ["--sampler", "gd", "--steps", "249", "--step-size", "0.003"]),
        (
            "nag_cfg_final",
            0,
            ["--sampler", "nag", "--steps", "249", "--step-size", "0.0017", "--momentum", "0.3", "--cfg", "1.5"],
        ),  # fmt: skip
        ("nag_cfg_final", 5, ["--cfg", "1.5"]),  # a converted run samples as the reference by default
    ],
)
def test_the_cli_reproduces_the_reference_finals_from_given_starts(runs, case, tmp_path, name, k, flags):
    run = Run(runs["none"])
    start = tmp_path / "z0.npy"  # the fixture's start k, in data coordinates (latents / 0.18215), class k
    np.save(start, run.info.denormalize(case["z0"][k : k + 1]).numpy())
    out = tmp_path / "final.npy"
    argv = ["sample", str(runs["none"]), "--n", "1", "--start", str(start), "--class", str(k), "--out", str(out)]
    assert main([*argv, *flags]) == 0
    final = run.info.normalize(torch.from_numpy(np.load(out)))
    torch.testing.assert_close(final[0], case[name][k], rtol=0, atol=2e-4)


def test_the_guidance_flag_switches_the_rule(runs, case, tmp_path, capsys):
    run = Run(runs["none"])
    start = tmp_path / "z0.npy"
    np.save(start, run.info.denormalize(case["z0"][:1]).numpy())
    argv = ["sample", str(runs["none"]), "--n", "1", "--start", str(start), "--class", "0", "--steps", "1"]
    capsys.readouterr()
    assert main([*argv, "--guidance", "all", "--out", str(tmp_path / "x.npy")]) == 2  # the rule of --cfg only
    assert "--cfg" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    finals = {}
    for rule in ("reference", "all"):
        assert main([*argv, "--cfg", "1.5", "--guidance", rule, "--out", str(tmp_path / f"{rule}.npy")]) == 0
        finals[rule] = np.load(tmp_path / f"{rule}.npy")[0]
    np.testing.assert_array_equal(finals["all"][:3], finals["reference"][:3])  # one step: channels 0-2 agree
    assert np.abs(finals["all"][3] - finals["reference"][3]).max() > 1e-4  # channel 3 is guided by "all" only
