"""Latent mode with a tiny locally built AutoencoderKL (diffusers): centre-crop, encode the posterior moments of
every image and its mirror image, draw a posterior sample of a random flip per step from the memory-mapped
cache, train, sample and decode to PNG / ADM .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from energen.cli.main import main
from energen.data.datasets import load_dataset
from energen.data.images import center_crop, read_image_folder
from energen.data.latents import LATENT_SCALE, LatentDataset, encode_folder, load_vae
from energen.errors import DataError

diffusers = pytest.importorskip("diffusers")  # in the dev extra; a bare install skips only this file


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    blocks = {"down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2}
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                                  layers_per_block=1, norm_num_groups=4, sample_size=16, **blocks)  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


@pytest.fixture
def image_dir(tmp_path):
    """Two classes of four random RGB images of assorted sizes."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(4):
            h, w = rng.integers(16, 30, 2)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    return tmp_path / "img"


def _latent_dir(path, moments: np.ndarray, labels=None, **meta):
    """A format-2 latent directory written by hand: moments (N, 2, 2, C, h, w)."""
    path.mkdir()
    np.save(path / "moments.npy", moments)
    if labels is not None:
        np.save(path / "labels.npy", np.asarray(labels, dtype=np.int64))
    meta = {"format": 2, "vae": "/nowhere", "latent_scale": LATENT_SCALE, "image_size": 16} | meta
    (path / "latents.json").write_text(json.dumps(meta))
    return path


def _two_flips(c=2, h=3, w=3, std0=0.5, std1=2.0) -> np.ndarray:
    """Moments of one image, (1, 2, 2, C, h, w): the two flips' means far apart (40 per entry, 20 std), and neither mean
    the other's mirror image."""
    rng = np.random.default_rng(1)
    m = np.empty((1, 2, 2, c, h, w), dtype=np.float32)
    m[0, 0, 0] = rng.normal(size=(c, h, w))
    m[0, 1, 0] = m[0, 0, 0] + 40.0 + rng.normal(size=(c, h, w))
    m[0, 0, 1], m[0, 1, 1] = std0, std1
    return m


def test_center_crop_is_adm_preprocessing():
    im = Image.fromarray(np.arange(40 * 100 * 3, dtype=np.uint32).reshape(40, 100, 3).astype(np.uint8))
    out = center_crop(im, 16)
    assert out.shape == (16, 16, 3)
    # the short side goes to 16 after one box halving (40 >= 2 * 16): 50 x 20 -> 40 x 16, centre 16 columns
    ref = np.asarray(im.resize((50, 20), Image.BOX).resize((40, 16), Image.BICUBIC))[:, 12:28]
    assert np.array_equal(out, ref)


def test_encode_stores_posterior_moments_of_image_and_mirror_image(tmp_path, vae_dir, image_dir):
    meta = encode_folder(image_dir, vae_dir, tmp_path / "lat", image_size=16, batch_size=3)  # 3: batches split
    assert meta["format"] == 2 and meta["count"] == 8 and meta["dtype"] == "float32"
    moments = np.load(tmp_path / "lat" / "moments.npy")
    assert moments.shape == (8, 2, 2, 4, 8, 8) and moments.dtype == np.float32
    images, labels = read_image_folder(image_dir, image_size=16, rgb=True)
    assert np.array_equal(np.load(tmp_path / "lat" / "labels.npy"), labels)
    vae = load_vae(vae_dir)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1  # the reference's Normalize(0.5, 0.5)
    with torch.no_grad():
        for f, pixels in enumerate((x, x.flip(-1))):  # flip 1: the mirror image, encoded
            post = vae.encode(pixels).latent_dist
            assert torch.allclose(torch.from_numpy(moments[:, f, 0]), post.mean, atol=1e-5)
            assert torch.allclose(torch.from_numpy(moments[:, f, 1]), post.std, atol=1e-5)
    # the mirror image's latent is not the mirrored latent: flips must be encoded, not applied to latents
    assert not np.allclose(moments[:, 1, 0], moments[:, 0, 0, ..., ::-1], atol=1e-2)
    encode_folder(image_dir, vae_dir, tmp_path / "lat16", image_size=16, dtype="float16")
    m16 = np.load(tmp_path / "lat16" / "moments.npy")
    assert m16.dtype == np.float16 and np.allclose(m16, moments, rtol=1e-3, atol=1e-3)
    assert json.loads((tmp_path / "lat16" / "latents.json").read_text())["dtype"] == "float16"


def test_draws_are_posterior_samples_of_a_fair_flip(tmp_path):
    m = _two_flips()
    ds = load_dataset(str(_latent_dir(tmp_path / "lat", np.repeat(m, 2000, axis=0))))  # one image, 2,000 times
    assert isinstance(ds, LatentDataset) and ds.info.shape == (2, 3, 3)
    n = 20_000  # ten epochs: every row of the batch is a fresh draw of the one image
    z = ds.info.denormalize(ds.batch(0, n, torch.Generator().manual_seed(0), hflip=True)[0])  # VAE units
    mean0, mean1 = torch.from_numpy(m[0, 0, 0]), torch.from_numpy(m[0, 1, 0])
    d0, d1 = (z - mean0).flatten(1).norm(dim=1), (z - mean1).flatten(1).norm(dim=1)
    flipped = d1 < d0
    assert torch.minimum(d0, d1).max() < 40  # every draw is near one of the two stored means (~170 apart)
    assert abs(flipped.float().mean().item() - 0.5) < 4 * (0.25 / n) ** 0.5  # ~50/50, 4 sigma
    for f, sel, mean, std in ((0, ~flipped, mean0, 0.5), (1, flipped, mean1, 2.0)):
        k = int(sel.sum())
        assert (z[sel].mean(0) - mean).abs().max() < 5 * std / k**0.5, f  # 5 standard errors, every entry
        assert (z[sel].std(0) / std - 1).abs().max() < 5 * (0.5 / k) ** 0.5, f  # std's relative error ~ 1/sqrt(2k)
    # without hflip: the image as is, a posterior sample of flip 0
    z = ds.info.denormalize(ds.batch(0, n, torch.Generator().manual_seed(1))[0])
    assert ((z - mean0).flatten(1).norm(dim=1) < 40).all()
    assert (z.mean(0) - mean0).abs().max() < 5 * 0.5 / n**0.5
    assert (z.std(0) / 0.5 - 1).abs().max() < 5 * (0.5 / n) ** 0.5


def test_model_sees_reference_units_and_draws_are_reproducible(tmp_path):
    rng = np.random.default_rng(2)
    m = rng.normal(size=(10, 2, 2, 4, 4, 4)).astype(np.float16)
    m[:, :, 1] = np.abs(m[:, :, 1])
    ds = load_dataset(str(_latent_dir(tmp_path / "lat", m, labels=np.arange(10) % 3)))
    assert ds.num_train == 10 and ds.info.num_classes == 3 and ds.reference()[0].shape == (10, 4, 4, 4)

    def draw(step, seed, **kw):
        return ds.batch(step, 4, torch.Generator().manual_seed(seed), hflip=True, **kw)

    x, y = draw(3, 0)
    assert x.dtype == torch.float32 and x.shape == (4, 4, 4, 4) and y.shape == (4,)
    assert torch.equal(x, draw(3, 0)[0]) and torch.equal(y, draw(3, 0)[1])  # same step and generator: same batch
    assert not torch.equal(x, draw(4, 0)[0]) and not torch.equal(x, draw(3, 1)[0])  # a new step, a new draw
    assert not torch.equal(draw(3, 0, rank=0, world=2)[0], draw(3, 1, rank=0, world=2)[0])  # ranks' generators
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(ds.batch(3, 4, gen)[0], ds.batch(3, 4, gen)[0])  # the generator moves on
    # zero std: the draw is the mean; the model sees latents times 0.18215, as in the reference
    m[:, :, 1] = 0
    ds = load_dataset(str(_latent_dir(tmp_path / "lat0", m)))
    x, _ = ds.batch(0, 10, torch.Generator().manual_seed(0))  # one epoch: every image once
    want = torch.from_numpy(m[:, 0, 0].astype(np.float32)) * LATENT_SCALE
    err = (x[:, None] - want[None]).flatten(2).abs().amax(-1)  # (batch row, image)
    assert err.amin(1).max() < 1e-6 and len(set(err.argmin(1).tolist())) == 10


def test_old_latent_directories_train_as_before_with_a_warning(tmp_path):
    lat = tmp_path / "old"
    lat.mkdir()
    means = np.random.default_rng(3).normal(size=(6, 4, 4, 4)).astype(np.float16)
    np.save(lat / "latents.npy", means)
    np.save(lat / "labels.npy", np.arange(6, dtype=np.int64) % 2)
    (lat / "latents.json").write_text(json.dumps({"vae": "/v", "latent_scale": LATENT_SCALE, "image_size": 32,
                                                 "flip": False, "count": 6}))  # fmt: skip
    with pytest.warns(UserWarning, match="format 1"):
        ds = load_dataset(str(lat))
    assert not isinstance(ds, LatentDataset) and ds.info.shape == (4, 4, 4) and ds.num_train == 6
    x, y = ds.batch(0, 6, torch.Generator().manual_seed(0))
    x2, _ = ds.batch(0, 6, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)  # the posterior mean, the same every time
    got = sorted(ds.info.denormalize(x).flatten(1)[:, 0].tolist())
    assert np.allclose(got, sorted(means.astype(np.float32)[:, 0, 0, 0].tolist()), atol=1e-5)  # one epoch
    xf, _ = ds.batch(0, 6, torch.Generator().manual_seed(0), hflip=True)
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(xf, x, strict=True))
    (lat / "latents.json").write_text(json.dumps({"format": 3, "vae": "/v", "latent_scale": LATENT_SCALE}))
    with pytest.raises(DataError, match="format 3"):
        load_dataset(str(lat))


def test_encode_train_sample_decode(tmp_path, vae_dir, image_dir, capsys):
    lat = tmp_path / "lat"
    assert main(["encode", str(image_dir), "--vae", str(vae_dir), "--out", str(lat), "--image-size", "16"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["count"] == 8 and meta["latent_scale"] == 0.18215 and meta["format"] == 2
    ds = load_dataset(str(lat))
    assert ds.info.shape == (4, 8, 8) and ds.info.num_classes == 2 and ds.info.decoder["vae"] == meta["vae"]
    x, y = ds.batch(0, 6, torch.Generator().manual_seed(0), hflip=True)
    assert x.shape == (6, 4, 8, 8) and set(y.tolist()) <= {0, 1} and torch.isfinite(x).all()
    run = tmp_path / "run"
    assert main(["train", "--data", str(lat), "--model", "EqM-S/2", "--steps", "2", "--batch-size", "4",
                 "--conditional", "--hflip", "--out", str(run), "--no-calibrate", "--quiet"]) == 0  # fmt: skip
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
    with pytest.raises(SystemExit):  # strict flags: a storage dtype outside the choices
        main(["encode", str(tmp_path / "img"), "--vae", str(vae_dir), "--out", str(tmp_path / "o"), "--dtype", "int8"])
    assert "invalid choice" in capsys.readouterr().err
