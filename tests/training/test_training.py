import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from energen import Run, train
from energen.data.info import Dataset
from energen.errors import CheckpointError, ConfigError, TrainingDiverged
from energen.methods.registry import METHODS
from energen.networks.base import MODELS


def _tensors(d):
    step = int(__import__("json").loads((d / "resume.json").read_text())["step"])
    return load_file(str(d / f"resume-{step:09d}.safetensors"))


@pytest.mark.parametrize("method", ["eqm", "eqm-e", "fm", "drl", "cdrl", "cd"])
def test_resume_is_bit_identical(tmp_path, method):
    kw = {"langevin_steps": 3} if method in ("drl", "cdrl", "cd") else {}
    if method == "cd":  # the buffer fills and wraps around before the resume point
        kw |= {"buffer_size": 500, "icd_kl": 1.0, "icd_entropy": 0.3}
    train(tiny_config(method=method, steps=30, **kw), tmp_path / "full", progress=False)
    train(tiny_config(method=method, steps=15, **kw), tmp_path / "half", progress=False)
    train(tiny_config(method=method, **kw), tmp_path / "half", resume=True, overrides={"steps": 30}, progress=False)
    a, b = _tensors(tmp_path / "full"), _tensors(tmp_path / "half")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_file(str(tmp_path / "full" / "model.safetensors")).keys() == {
        k[len("ema.") :] for k in a if k.startswith("ema.")
    }
    rows = (tmp_path / "half" / "log.csv").read_text().splitlines()
    assert rows == (tmp_path / "full" / "log.csv").read_text().splitlines()[: len(rows)] or len(rows) > 1


def test_conditional_resume_on_digits(tmp_path):
    cfg = tiny_config(data="digits", conditional=True, steps=10, ckpt_every=5)
    train(cfg, tmp_path / "a", progress=False)
    train(tiny_config(data="digits", conditional=True, steps=5, ckpt_every=5), tmp_path / "b", progress=False)
    train(cfg, tmp_path / "b", resume=True, overrides={"steps": 10}, progress=False)
    a, b = _tensors(tmp_path / "a"), _tensors(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_is_never_overwritten(tmp_path):
    d = tmp_path / "run"
    train(tiny_config(steps=10), d, progress=False)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ConfigError, match="not empty"):
        train(tiny_config(steps=10), d, progress=False)
    with pytest.raises(ConfigError, match="differs"):
        train(tiny_config(), d, resume=True, overrides={"steps": 20, "lr": 0.5}, progress=False)
    with pytest.raises(ConfigError, match="already at step"):
        train(tiny_config(), d, resume=True, overrides={"steps": 10}, progress=False)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_resume_without_state(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_config(), tmp_path, resume=True, overrides={"steps": 5}, progress=False)


def test_nan_loss_stops_with_the_step(tmp_path, monkeypatch):
    orig = Dataset.batch

    def poisoned(self, step, *a, **kw):
        x, y = orig(self, step, *a, **kw)
        return (x * float("inf") if step == 6 else x), y

    monkeypatch.setattr(Dataset, "batch", poisoned)
    with pytest.raises(TrainingDiverged, match="at step 7"):
        train(tiny_config(steps=20), tmp_path / "r", progress=False)


def test_corrupt_checkpoints(tmp_path):
    d = tmp_path / "run"
    train(tiny_config(steps=10), d, progress=False)
    model = d / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        Run(d)
    torch.save({"w": torch.zeros(2)}, model)  # a pickle where safetensors is expected
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        Run(d)
    (d / "resume.json").write_text("{trunc")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        train(tiny_config(), d, resume=True, overrides={"steps": 20}, progress=False)


def test_every_method_and_model_builds():
    for m in METHODS:
        for name in MODELS:
            if name.startswith(("EqM-B", "EqM-L", "EqM-XL")):
                continue  # the S sizes stand for them here; all twelve are built in test_transformer
            for shape in ((2,), (1, 8, 8)):
                if name == "resnet" and (m != "cd" or len(shape) != 3):  # an image energy network
                    with pytest.raises(ConfigError, match="image energy network"):
                        METHODS.get(m).build_model(tiny_config(method=m, model=name), shape, num_classes=3)
                    continue
                if name.startswith(("EqM-", "unet")) and len(shape) == 1:
                    with pytest.raises(ConfigError, match="square images|for images"):  # transformer, U-Net
                        METHODS.get(m).build_model(tiny_config(method=m, model=name), shape, num_classes=3)
                    continue
                init = "mlp-small" if name == "resnet" else name
                cfg = METHODS.get(m).resolve(tiny_config(method=m, model=name, init_model=init), shape)
                net = METHODS.get(m).build_model(cfg, shape, num_classes=3)
                x = torch.randn(4, *shape)
                t = torch.rand(4) if METHODS.get(m).learns_velocity else None
                assert net(x, t, torch.tensor([0, 1, 2, 3])).shape == x.shape


def test_calibration_and_sampling(tiny_run):
    run = Run(tiny_run)
    cal = run.default_sampler.extra["calibration"]
    grid = cal["grid"]
    assert cal["best"] == min(grid, key=grid.get) and len(grid) >= 11
    h, temp = (float(v) for v in cal["best"].split("@"))
    assert abs(run.default_sampler.steps * run.default_sampler.step_size - h) < 1e-9
    assert run.default_sampler.noise == temp
    # samples are independent of the batch they were drawn in
    a, _ = run.sample(10, seed=3, batch_size=10)
    b, _ = run.sample(10, seed=3, batch_size=3)
    assert torch.allclose(a, b, atol=1e-5)
    c, _ = run.sample(4, seed=5)
    assert torch.allclose(a[2:6], c, atol=1e-5)


def test_trained_eqm_beats_noise(tiny_run):
    from energen.data.datasets import load_dataset
    from energen.evaluation.metrics import sliced_w1

    run = Run(tiny_run)
    ref, _ = load_dataset("8gaussians").reference(2000)
    x, _ = run.sample(2000)
    noise = run.info.denormalize(torch.randn(2000, 2))
    assert sliced_w1(x, ref) < 0.5 * sliced_w1(noise, ref)


def test_keep_exports_keeps_every_checkpoints_ema(tmp_path):
    d = tmp_path / "run"
    train(tiny_config(steps=10, ckpt_every=5, keep_exports=True), d, progress=False)
    kept = sorted(p.name for p in (d / "exports").iterdir())
    assert kept == ["model-000000005.safetensors", "model-000000010.safetensors"]
    last, first = load_file(str(d / "exports" / kept[1])), load_file(str(d / "exports" / kept[0]))
    final = load_file(str(d / "model.safetensors"))
    assert all(torch.equal(final[k], last[k]) for k in final)  # the latest export is the run's model
    assert any(not torch.equal(first[k], last[k]) for k in final)  # the earlier one is the step-5 EMA
    assert len(list(d.glob("resume-*.safetensors"))) == 1  # only the latest resume state
    train(tiny_config(steps=10, ckpt_every=5), tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain" / "exports").exists()
