import numpy as np
import pytest
import torch
from PIL import Image

from energen.data.datasets import BUILTIN, load_dataset
from energen.data.samples import read_samples, write_samples
from energen.data.toys import TOYS
from energen.errors import DataError


@pytest.mark.parametrize("name", list(TOYS))
def test_toys_are_seeded_and_finite(name):
    a = TOYS.get(name)(500, torch.Generator().manual_seed(1))
    b = TOYS.get(name)(500, torch.Generator().manual_seed(1))
    assert a.shape == (500, 2) and torch.isfinite(a).all() and torch.equal(a, b)


def test_every_builtin_loads():
    for name in BUILTIN:
        ds = load_dataset(name)
        x, _ = ds.batch(0, 16, torch.Generator().manual_seed(0))
        assert x.shape == (16, *ds.info.shape)


def test_digits_split_and_normalisation():
    ds = load_dataset("digits")
    assert ds.info.shape == (1, 8, 8) and ds.info.num_classes == 10
    assert len(ds.train_x) == 1437 and len(ds.ref_x) == 360
    x, y = ds.batch(0, 32, torch.Generator())
    assert x.min() >= -1 and x.max() <= 1 and y.shape == (32,)
    assert torch.allclose(ds.info.denormalize(ds.info.normalize(ds.ref_x)), ds.ref_x, atol=1e-5)


def test_epochs_visit_every_sample_once():
    x = np.arange(10, dtype=np.float32)[:, None].repeat(2, 1)
    np.save("/tmp/_energen_ep.npy", x)
    ds = load_dataset("/tmp/_energen_ep.npy")
    seen = torch.cat([ds.info.denormalize(ds.batch(s, 5, torch.Generator())[0])[:, 0] for s in range(2)])
    assert sorted(seen.round().tolist()) == list(range(10))


def test_user_files(tmp_path):
    vec = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", vec)
    assert load_dataset(str(tmp_path / "v.npy")).info.shape == (3,)
    imgs = np.random.default_rng(0).integers(0, 256, size=(6, 5, 4, 3), dtype=np.uint8)  # N x H x W x C
    np.savez(tmp_path / "i.npz", x=imgs, y=np.array([0, 1, 2, 0, 1, 2]))
    ds = load_dataset(str(tmp_path / "i.npz"))
    assert ds.info.shape == (3, 5, 4) and ds.info.layout == "nhwc" and ds.info.num_classes == 3
    folder = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(imgs[i]).save(folder / c / f"{i}.png")
    ds = load_dataset(str(folder))
    assert ds.info.shape == (3, 5, 4) and ds.info.num_classes == 2


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array([1.0, np.nan, 2.0] * 4).reshape(6, 2), "NaN"),
        (np.zeros(10), "expected N x D"),
        (np.zeros((4, 5, 5, 5, 5)), "expected N x D"),
        (np.array([{"a": 1}] * 3, dtype=object), "pickled|numeric"),
    ],
)
def test_bad_arrays_are_rejected(tmp_path, array, message):
    p = tmp_path / "bad.npy"
    np.save(p, array, allow_pickle=True)
    with pytest.raises(DataError, match=message):
        load_dataset(str(p))


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(DataError, match="neither a built-in"):
        load_dataset(str(tmp_path / "nope.npy"))
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported"):
        load_dataset(str(tmp_path / "x.csv"))
    np.savez(tmp_path / "k.npz", data=np.zeros((3, 2)))
    with pytest.raises(DataError, match="must hold an array 'x'"):
        load_dataset(str(tmp_path / "k.npz"))


def test_sample_io_round_trip(tmp_path):
    ds = load_dataset("digits")
    x = ds.ref_x[:12].round()
    write_samples(x, ds.info, tmp_path / "s.npy")
    assert np.load(tmp_path / "s.npy").shape == (12, 8, 8)  # the data's own layout
    assert torch.allclose(read_samples(tmp_path / "s.npy", ds.info), x)
    write_samples(x, ds.info, tmp_path / "s.npz")
    arr = np.load(tmp_path / "s.npz")["arr_0"]
    assert arr.shape == (12, 8, 8, 3) and arr.dtype == np.uint8
    write_samples(x, ds.info, tmp_path / "png")
    assert sorted(p.name for p in (tmp_path / "png").iterdir())[:2] == ["000000.png", "000001.png"]
    for p in ("s.npz", "png"):  # uint8 quantisation: 16 / 255 per level
        assert (read_samples(tmp_path / p, ds.info) - x).abs().max() < 0.04
    with pytest.raises(DataError, match="expected arrays of shape"):
        np.save(tmp_path / "w.npy", np.zeros((3, 8, 9)))
        read_samples(tmp_path / "w.npy", ds.info)
