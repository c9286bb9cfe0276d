"""Latent mode with a tiny locally built AutoencoderKL (diffusers): centre-crop, encode and cache, train on
the memory-mapped cache, sample and decode to PNG / ADM .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from energen.cli.main import main
from energen.data.datasets import load_dataset
from energen.data.images import center_crop

diffusers = pytest.importorskip("diffusers")  # in the dev extra; a bare install skips only this file


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    blocks = {"down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2}
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                                  layers_per_block=1, norm_num_groups=4, sample_size=16, **blocks)  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


def test_center_crop_is_adm_preprocessing():
    im = Image.fromarray(np.arange(40 * 100 * 3, dtype=np.uint32).reshape(40, 100, 3).astype(np.uint8))
    out = center_crop(im, 16)
    assert out.shape == (16, 16, 3)
    # the short side goes to 16 after one box halving (40 >= 2 * 16): 50 x 20 -> 40 x 16, centre 16 columns
    ref = np.asarray(im.resize((50, 20), Image.BOX).resize((40, 16), Image.BICUBIC))[:, 12:28]
    assert np.array_equal(out, ref)


def test_encode_train_sample_decode(tmp_path, vae_dir, capsys):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(4):
            h, w = rng.integers(16, 30, 2)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    lat = tmp_path / "lat"
    assert main(["encode", str(tmp_path / "img"), "--vae", str(vae_dir), "--out", str(lat), "--image-size", "16",
                 "--flip"]) == 0  # fmt: skip
    meta = json.loads(capsys.readouterr().out)
    assert meta["count"] == 16 and meta["latent_scale"] == 0.18215
    ds = load_dataset(str(lat))
    assert ds.info.shape == (4, 8, 8) and ds.info.num_classes == 2 and ds.info.decoder["vae"] == meta["vae"]
    x, y = ds.batch(0, 6, torch.Generator().manual_seed(0))
    raw = np.load(lat / "latents.npy")
    assert torch.allclose(x * (1 / 0.18215), ds.info.denormalize(x))  # the model sees latents times 0.18215
    assert x.shape == (6, 4, 8, 8) and set(y.tolist()) <= {0, 1} and np.isfinite(raw).all()
    run = tmp_path / "run"
    assert main(["train", "--data", str(lat), "--model", "EqM-S/2", "--steps", "2", "--batch-size", "4",
                 "--conditional", "--out", str(run), "--no-calibrate", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "3", "--steps", "2", "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as z:
        assert z["arr_0"].shape == (3, 16, 16, 3) and z["arr_0"].dtype == np.uint8  # decoded to pixels
    assert main(["sample", str(run), "--n", "2", "--steps", "2", "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (2, 4, 8, 8)  # latents in the VAE's units


def test_encode_errors(tmp_path, vae_dir, capsys):
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(tmp_path / "img" / "x.png")
    assert main(["encode", str(tmp_path / "img"), "--vae", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "AutoencoderKL" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "img"), "--vae", str(vae_dir), "--out", str(tmp_path / "o"),
                 "--image-size", "15"]) == 2  # fmt: skip
    assert "multiple of 2" in capsys.readouterr().err
