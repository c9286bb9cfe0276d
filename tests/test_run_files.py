"""Hand-edited or corrupt run files (resume.json, data.json, sampler.json, config.json, model.safetensors) are
refused with one line naming the file and the field, never a traceback and never silently accepted."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
from conftest import tiny_config

from energen import train
from energen.cli.main import main
from energen.data.info import DataInfo
from energen.errors import CheckpointError, ConfigError
from energen.methods import saved_config
from energen.samplers.settings import SamplerSettings
from energen.training.checkpoint import load_resume


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(steps=10, ckpt_every=10), d, progress=False)
    return d


@pytest.fixture
def run(trained, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(trained, d)
    return d


def _edit(path, **changes):
    d = json.loads(path.read_text()) | changes
    path.write_text(json.dumps(d))


# ------------------------------------------------------------------ data.json


def _info() -> dict:
    return {"name": "toy", "kind": "vector", "shape": [2], "layout": "vector", "num_classes": 0,
            "shift": [0.0, 1.0], "scale": [1.0, 2.0], "lo": -3.0, "hi": 3.0, "decoder": None}  # fmt: skip


def _image_info() -> dict:
    return _info() | {"kind": "image", "shape": [3, 8, 8], "layout": "nhwc", "shift": [0.5], "scale": [0.5],
                      "lo": 0.0, "hi": 1.0}  # fmt: skip


def test_good_data_json_round_trips():
    for d in (_info(), _image_info(), _image_info() | {"decoder": {"vae": None, "latent_scale": 0.18}}):
        info = DataInfo.from_json(d)
        assert DataInfo.from_json(json.loads(json.dumps(info.to_json()))) == info


@pytest.mark.parametrize(
    "change, field",
    [
        ({"scale": [0.0, 2.0]}, "scale"),
        ({"scale": [1.0, float("inf")]}, "scale"),
        ({"scale": [1.0]}, "scale"),  # one entry per dimension for vectors
        ({"shift": ["a", 1.0]}, "shift"),
        ({"shape": [-2]}, "shape"),
        ({"shape": [0]}, "shape"),
        ({"shape": "2"}, "shape"),
        ({"shape": [2.5]}, "shape"),
        ({"layout": "nhwc"}, "layout"),  # an image layout for vector data
        ({"kind": "audio"}, "kind"),
        ({"num_classes": -1}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"lo": 4.0}, "lo"),
        ({"hi": "big"}, "hi"),
        ({"name": 3}, "name"),
        ({"decoder": {"vae": None, "latent_scale": 1.0}}, "decoder"),  # vectors are not latents
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_data_json_is_refused_naming_the_field(change, field):
    with pytest.raises(CheckpointError, match=rf"^data\.json: .*{field}") as e:
        DataInfo.from_json(_info() | change)
    assert "\n" not in str(e.value)


def test_data_json_missing_key_and_bad_image_fields():
    with pytest.raises(CheckpointError, match="data.json: missing key.* scale"):
        DataInfo.from_json({k: v for k, v in _info().items() if k != "scale"})
    with pytest.raises(CheckpointError, match="shape"):
        DataInfo.from_json(_image_info() | {"shape": [3, 8]})
    with pytest.raises(CheckpointError, match="lo must be below hi"):
        DataInfo.from_json(_image_info() | {"hi": 0.0})
    with pytest.raises(CheckpointError, match="decoder.latent_scale"):
        DataInfo.from_json(_image_info() | {"decoder": {"vae": None, "latent_scale": 0}})


# ------------------------------------------------------------------ sampler.json


def test_good_sampler_json_round_trips():
    from energen.samplers.registry import SAMPLERS

    for name in SAMPLERS.names():
        s = SAMPLERS.get(name)()
        assert SamplerSettings.from_json(json.loads(json.dumps(s.to_json()))) == s


@pytest.mark.parametrize(
    "d, field",
    [
        ({"sampler": "gd", "format": 2, "steps": -5}, "steps"),
        ({"sampler": "gd", "format": 2, "steps": 2.5}, "steps"),
        ({"sampler": "gd", "format": 2, "step_size": 0}, "step_size"),
        ({"sampler": "gd", "format": 2, "step_size": "big"}, "step_size"),
        ({"sampler": "gd", "format": 2, "step_size": None}, "step_size"),
        ({"sampler": "gd", "format": 2, "noise": -1.0}, "noise"),
        ({"sampler": "gd", "format": 2, "tol": 0}, "tol"),
        ({"sampler": "nag", "format": 2, "momentum": 1.5}, "momentum"),
        ({"sampler": "langevin", "format": 2, "temperature": -1}, "temperature"),
        ({"sampler": "langevin", "format": 2, "clamp": [1, -1]}, "clamp"),
        ({"sampler": "langevin", "format": 2, "grad_clip": 0}, "grad_clip"),
        ({"sampler": "smc", "format": 2, "box": [0, 1, 2]}, "box"),
        ({"sampler": "ode", "format": 2, "ode_method": "rk99"}, "ODE method"),
        ({"sampler": "langevin", "step_size": "x", "temperature": 1.0}, "step_size"),  # format 1
        ({"sampler": ["gd"], "format": 2}, "sampler"),
        ({"sampler": "gd", "format": 7}, "format"),
        ({"sampler": "gd", "format": 2, "extra": 3}, "extra"),
    ],
)
def test_bad_sampler_json_is_refused_naming_the_field(d, field):
    with pytest.raises(CheckpointError, match=rf"^run/sampler\.json: .*{field}") as e:
        SamplerSettings.from_json(d, where="run/sampler.json")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ resume.json


@pytest.mark.parametrize(
    "change, field",
    [
        ({"step": -3}, "step"),
        ({"step": "ten"}, "step"),
        ({"step": 1.5}, "step"),
        ({"tensors": "../elsewhere.safetensors"}, "tensors"),
        ({"tensors": 7}, "tensors"),
        ({"optimizer": []}, "optimizer"),
        ({"optimizer": {"param_groups": "x", "state": {}}}, "optimizer.param_groups"),
        ({"optimizer": {"param_groups": [{"lr": -1.0, "params": [0]}], "state": {}}}, "lr"),
        ({"optimizer": {"param_groups": [{"lr": 0.1, "params": ["a"]}], "state": {}}}, "params"),
        ({"optimizer": {"param_groups": [], "state": {"x": {}}}}, "optimizer.state"),
        ({"extra": [1]}, "extra"),
        ({"version": 99}, "version"),
    ],
)
def test_bad_resume_json_is_refused_naming_the_field(run, change, field):
    _edit(run / "resume.json", **change)
    with pytest.raises(CheckpointError, match=rf"resume\.json: .*{field}") as e:
        load_resume(run)
    assert "\n" not in str(e.value)


def test_resume_json_missing_step(run):
    d = json.loads((run / "resume.json").read_text())
    del d["step"]
    (run / "resume.json").write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="resume.json: missing key 'step'"):
        load_resume(run)


# ------------------------------------------------------------------ config.json


@pytest.mark.parametrize(
    "change, field",
    [({"lr": "fast"}, "lr"), ({"lr": -1.0}, "lr"), ({"steps": [1]}, "steps"), ({"method": "nope"}, "method"),
     ({"method": 3}, "method"), ({"wat": 1}, "wat")],
)  # fmt: skip
def test_bad_config_json_is_refused_naming_the_field(run, change, field):
    _edit(run / "config.json", **change)
    with pytest.raises(ConfigError, match=rf"config\.json: .*{field}") as e:
        saved_config(run)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ through the CLI


def _one_line_refusal(capsys, argv, *words):
    capsys.readouterr()
    assert main([str(a) for a in argv]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("energen"), err
    assert all(w in err[0] for w in words), err[0]


@pytest.mark.parametrize(
    "file, change, field",
    [
        ("data.json", {"scale": [0.0, 1.0]}, "scale"),
        ("data.json", {"shape": [-2]}, "shape"),
        ("sampler.json", {"sampler": "gd", "format": 2, "steps": -1}, "steps"),
        ("config.json", {"lr": "fast"}, "lr"),
    ],
)
def test_cli_sample_refuses_bad_run_files_in_one_line(run, tmp_path, capsys, file, change, field):
    if file == "sampler.json" and not (run / file).exists():
        (run / file).write_text("{}")
    _edit(run / file, **change)
    _one_line_refusal(capsys, ["sample", run, "--n", 5, "--out", tmp_path / "x.npy"], file, field)
    assert not (tmp_path / "x.npy").exists()


def test_cli_resume_refuses_a_negative_step(run, capsys):
    _edit(run / "resume.json", step=-3)
    _one_line_refusal(capsys, ["train", "--out", run, "--resume", "--steps", 20], "resume.json", "step")


def test_cli_sample_refuses_a_corrupt_model(run, tmp_path, capsys):
    path = run / "model.safetensors"
    raw = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    raw[start + 3] ^= 0x40  # flip exponent bits of the first float32 weight
    path.write_bytes(bytes(raw))
    _one_line_refusal(capsys, ["sample", run, "--n", 5, "--out", tmp_path / "x.npy"], "model.safetensors",
                      "checksum mismatch")  # fmt: skip
    assert not (tmp_path / "x.npy").exists()
