"""FID, Inception Score and precision/recall against independent computations, with a small TorchScript
stand-in for the Inception network (same calling convention as inception-2015-12-05.pt)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from standin import StandIn

from energen.cli.main import main
from energen.errors import CheckpointError, DataError
from energen.evaluation import fid
from energen.evaluation.metrics import frechet_stats_distance


@pytest.fixture
def net(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "standin.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated, yet it is the format of the FID Inception file
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(StandIn()).save(str(path))
    return fid.InceptionFeatures(path, batch_size=7)


def test_fid_agrees_with_an_eigenvalue_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) + 0.3
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    # tr sqrtm(s1 s2) = sum of the square roots of the eigenvalues of s1 s2 (real, non-negative)
    eig = scipy.linalg.eigvals(s1 @ s2)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig.real, 0, None)).sum()
    got = frechet_stats_distance(mu1, s1, mu2, s2)
    assert abs(got - expected) / expected < 1e-6
    assert abs(frechet_stats_distance(mu1, s1, mu1, s1)) < 1e-6


def test_inception_score_limits():
    k = 8
    confident = np.eye(k)[np.arange(800) % k]  # sure of one class each, classes balanced: IS = k
    assert fid.inception_score(confident, splits=4)[0] == pytest.approx(k, rel=1e-6)
    assert fid.inception_score(np.full((100, k), 1 / k), splits=2)[0] == pytest.approx(1.0)


def test_precision_recall_limits():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 5))
    assert fid.precision_recall(real, real.copy()) == (1.0, 1.0)
    assert fid.precision_recall(real, real + 100.0) == (0.0, 0.0)
    narrow = 0.1 * rng.normal(size=(300, 5))  # inside the real manifold, covering little of it
    p, r = fid.precision_recall(real, narrow)
    assert p > 0.9 and r < 0.5


def _precision_recall_full_matrix(real, fake, k=3):
    """The former implementation: the whole N x N distance matrix at once."""
    real, fake = torch.from_numpy(real.astype(np.float64)), torch.from_numpy(fake.astype(np.float64))

    def radius(x):
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    def covered(points, centres, radii):
        return float((torch.cdist(points, centres) <= radii[None]).any(dim=1).double().mean())

    return covered(fake, real, radius(real)), covered(real, fake, radius(fake))


@pytest.mark.parametrize("rows", [1, 7, 64, 2000])
def test_chunked_precision_recall_equals_the_full_matrix(rows):
    rng = np.random.default_rng(4)
    real = rng.normal(size=(150, 6))
    fake = 0.8 * rng.normal(size=(120, 6)) + 0.3
    x = torch.from_numpy(real)
    full = torch.cdist(x, x).kthvalue(4, dim=1).values.numpy()
    assert np.allclose(fid._kth_radius(real, 3, rows=rows), full, rtol=1e-12, atol=0)
    got = fid.precision_recall(real, fake, rows=rows)
    assert got == _precision_recall_full_matrix(real, fake)
    assert 0 < got[0] < 1 and 0 < got[1] < 1


def test_adm_reference_batch_gives_precision_and_recall(net, tmp_path):
    """ADM's reference batches hold images as arr_0 (N, H, W, 3) besides mu/sigma: their features are computed."""
    rng = np.random.default_rng(5)
    real = rng.integers(0, 256, size=(40, 3, 20, 20), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, size=real.shape), 0, 255).astype(np.uint8)
    mu, sigma = fid.feature_stats(net.features(real))
    hwc = real.transpose(0, 2, 3, 1)
    np.savez(tmp_path / "adm.npz", arr_0=hwc, mu=mu, sigma=sigma, mu_s=np.zeros(3), sigma_s=np.eye(3))
    np.savez(tmp_path / "images_only.npz", arr_0=hwc)
    np.savez(tmp_path / "stats_only.npz", mu=mu, sigma=sigma)
    by_images = fid.image_metrics(fake, net, ref_images=real, splits=2)
    for name in ("adm.npz", "images_only.npz"):
        got = fid.image_metrics(fake, net, ref_stats=tmp_path / name, splits=2)
        for key in ("fid", "precision", "recall"):
            assert got[key] == pytest.approx(by_images[key], rel=1e-6), (name, key)
        assert "precision_recall" not in got
    stats_only = fid.image_metrics(fake, net, ref_stats=tmp_path / "stats_only.npz", splits=2)
    assert stats_only["fid"] == pytest.approx(by_images["fid"], rel=1e-6)
    assert "precision" not in stats_only and "statistics only" in stats_only["precision_recall"]
    np.savez(tmp_path / "empty.npz", other=np.zeros(2))
    with pytest.raises(DataError, match="'mu' and 'sigma'"):
        fid.image_metrics(fake, net, ref_stats=tmp_path / "empty.npz")


def test_stats_file_round_trip_and_metrics_agree(net, tmp_path):
    rng = np.random.default_rng(2)
    real = rng.integers(0, 256, size=(60, 3, 20, 20), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-40, 40, size=real.shape), 0, 255).astype(np.uint8)
    fid.save_stats(tmp_path / "ref.npz", net.features(real))
    mu, sigma, feats = fid.load_stats(tmp_path / "ref.npz")
    assert mu.shape == (16,) and sigma.shape == (16, 16) and feats.shape == (60, 16)
    by_stats = fid.image_metrics(fake, net, ref_stats=tmp_path / "ref.npz", splits=3)
    by_images = fid.image_metrics(fake, net, ref_images=real, splits=3)
    for key in ("fid", "inception_score", "precision", "recall"):
        assert by_stats[key] == pytest.approx(by_images[key], rel=1e-5)
    assert fid.image_metrics(real, net, ref_images=real)["fid"] < 1e-6 < by_images["fid"]


def test_bad_inputs_are_clear_errors(net, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        fid.InceptionFeatures(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="TorchScript"):
        fid.InceptionFeatures(tmp_path / "junk.pt")
    with pytest.raises(DataError, match="uint8"):
        net.features(np.zeros((2, 3, 8, 8), dtype=np.float32))
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3), sigma=np.zeros((2, 2)))
    with pytest.raises(DataError, match="do not fit"):
        fid.load_stats(tmp_path / "bad.npz")


def test_fid_command(net, tmp_path, capsys):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, size=(30, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "samples.npz", arr_0=imgs)
    (tmp_path / "pngs").mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / "pngs" / f"{i:06d}.png")
    assert np.array_equal(fid.read_images(tmp_path / "pngs"), fid.read_images(tmp_path / "samples.npz"))
    inc = str(tmp_path / "standin.pt")
    assert main(["fid", str(tmp_path / "pngs"), "--inception", inc, "--save-stats", str(tmp_path / "s.npz")]) == 0
    capsys.readouterr()
    assert main(["fid", str(tmp_path / "samples.npz"), "--inception", inc, "--ref", str(tmp_path / "s.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fid"] == pytest.approx(0.0, abs=1e-6) and out["precision"] == 1.0
    mu, sigma = fid.feature_stats(net.features(fid.read_images(tmp_path / "samples.npz")))
    np.savez(tmp_path / "adm_ref.npz", arr_0=imgs, mu=mu, sigma=sigma)  # an ADM reference batch: images too
    assert main(["fid", str(tmp_path / "pngs"), "--inception", inc, "--ref", str(tmp_path / "adm_ref.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == 1.0 and out["recall"] == 1.0
    assert main(["fid", str(tmp_path / "samples.npz"), "--inception", inc, "--ref", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err
