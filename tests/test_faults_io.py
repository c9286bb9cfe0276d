"""Issue 25, defects 4, 6 and 11: refusals of bad outputs, labels and arrays are one line, exit non-zero, leave
no traceback, and change nothing of an existing run."""

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config

from energen import train
from energen.cli.main import main
from energen.data.datasets import load_dataset
from energen.data.images import read_image_folder
from energen.data.info import DataInfo
from energen.data.samples import read_mask, read_samples
from energen.errors import ConfigError, DataError
from energen.generation import check_new_output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults_io") / "run"
    train(tiny_config(steps=10, ckpt_every=10), d, progress=False)
    return d


def _digest(d: Path) -> dict:
    files = sorted(f for f in d.rglob("*") if f.is_file())
    return {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("energen "), err
    return lines[0]


def _nothing_written(run: Path) -> bool:
    """No checkpoint, config or log in a refused run's folder (training may have made it and its lock)."""
    return {f.name for f in run.rglob("*")} <= {".lock"}


@pytest.fixture
def no_sampling(monkeypatch):
    from energen.run import Run

    def refuse(*args, **kwargs):
        raise AssertionError("sampled before checking the output")

    monkeypatch.setattr(Run, "sample", refuse)


# ------------------------------------------------------------------------------------------- 4: outputs
def test_sample_into_a_missing_folder_fails_before_sampling(run_dir, tmp_path, capsys, no_sampling):
    before = _digest(run_dir)
    out = tmp_path / "missing" / "s.npy"
    assert main(["sample", str(run_dir), "--n", "5", "--out", str(out)]) == 2
    line = _one_line(capsys)
    assert "does not exist" in line and "missing" in line
    assert not out.parent.exists() and _digest(run_dir) == before


def test_task_output_into_a_missing_folder_fails_before_work(run_dir, tmp_path, capsys, no_sampling):
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    out = tmp_path / "missing" / "y.npy"
    assert main(["denoise", str(run_dir), "--input", str(tmp_path / "x.npy"), "--out", str(out)]) == 2
    assert "does not exist" in _one_line(capsys)
    png = tmp_path / "nowhere" / "p.png"
    args = ["denoise", str(run_dir), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]
    assert main([*args, "--png", str(png)]) == 2
    assert "does not exist" in _one_line(capsys) and not (tmp_path / "y.npy").exists()


def test_output_folder_rules(tmp_path):
    check_new_output(tmp_path / "a" / "b" / "pngs", False, (".npy",), allow_dir=True)  # created with its parents
    (tmp_path / "f.txt").write_text("")
    with pytest.raises(ConfigError, match="not a folder"):
        check_new_output(tmp_path / "f.txt" / "pngs", False, (".npy",), allow_dir=True)
    with pytest.raises(ConfigError, match="not a folder"):
        check_new_output(tmp_path / "f.txt" / "s.npy", False, (".npy",), allow_dir=True)
    with pytest.raises(ConfigError, match="does not exist"):
        check_new_output(tmp_path / "no" / "s.npz", False, (".npz",), allow_dir=False)


def test_sample_into_a_read_only_folder(run_dir, tmp_path, capsys, no_sampling):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("permissions do not bind here (running as root)")
        assert main(["sample", str(run_dir), "--n", "5", "--out", str(ro / "s.npy")]) == 2
        assert "not writable" in _one_line(capsys)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_os_errors_deep_inside_are_one_line(run_dir, tmp_path, capsys, monkeypatch, code):
    """A full disk or a folder that turns read-only while writing: one line naming the reason and the file."""
    import energen.utils

    def failing_write(path, data):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(energen.utils, "atomic_write_bytes", failing_write)
    before = _digest(run_dir)
    out = tmp_path / "s.npy"
    assert main(["sample", str(run_dir), "--n", "5", "--out", str(out)]) == 1
    assert _one_line(capsys) == f"energen sample: {os.strerror(code)}: {out}"
    assert not out.exists() and _digest(run_dir) == before


def test_os_error_without_a_file_name_is_one_line(run_dir, tmp_path, capsys, monkeypatch):
    from energen.run import Run

    def failing(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Run, "sample", failing)
    assert main(["sample", str(run_dir), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 1
    assert _one_line(capsys) == "energen sample: No space left on device"


# -------------------------------------------------------------------------------------------- 6: labels
def _npz(tmp_path, y, name="d.npz") -> Path:
    p = tmp_path / name
    np.savez(p, x=np.random.default_rng(0).normal(size=(len(y), 2)).astype(np.float32), y=np.asarray(y))
    return p


@pytest.mark.parametrize(
    "y, match",
    [
        ([0, 1, 10**9, 2], "1000000001 classes"),
        ([0, 1, 200_000, 2] * 100_000, "200001 classes"),
        ([0, -1, 1, 2], "0..K-1"),
        ([0.0, 1.0, 1.5, 2.0], "dtype float64"),
        ([0, 1, 1, 0], None),
    ],
)
def test_labels_are_checked_when_loading(tmp_path, y, match):
    p = _npz(tmp_path, y)
    if match is None:
        assert load_dataset(str(p)).info.num_classes == 2
        return
    with pytest.raises(DataError, match=match) as e:
        load_dataset(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_classes_may_outnumber_a_few_samples_but_not_many(tmp_path):
    assert load_dataset(str(_npz(tmp_path, [0, 999]))).info.num_classes == 1000  # a subset of a labelled set
    with pytest.raises(DataError, match="more than 1000"):
        load_dataset(str(_npz(tmp_path, [0, 1000])))


def test_train_refuses_a_huge_label_in_one_line(tmp_path, capsys):
    p = _npz(tmp_path, [0, 1, 10**9, 2])
    out = tmp_path / "r"
    assert main(["train", "--data", str(p), "--conditional", "--out", str(out), "--steps", "2", "--quiet"]) == 2
    assert str(p) in _one_line(capsys) and _nothing_written(out)


# ------------------------------------------------------------------------------ 11: complex, mixed folders
@pytest.mark.parametrize("x", [np.ones((4, 2), np.complex64), np.array([["a", "b"]] * 4)])
def test_complex_and_string_arrays_are_refused(tmp_path, capsys, x):
    info = DataInfo(name="v", kind="vector", shape=(2,), layout="vector", num_classes=0, shift=[0.0, 0.0],
                    scale=[1.0, 1.0], lo=-1.0, hi=1.0)  # fmt: skip
    np.save(tmp_path / "c.npy", x)
    np.savez(tmp_path / "c.npz", x=x)
    for p in (tmp_path / "c.npy", tmp_path / "c.npz"):
        with pytest.raises(DataError, match="real numeric array"):
            load_dataset(str(p))
    with pytest.raises(DataError, match="real numeric array"):
        read_samples(tmp_path / "c.npy", info)
    with pytest.raises(DataError, match="real numeric array"):
        read_mask(tmp_path / "c.npy", info)
    out = tmp_path / "r"
    assert main(["train", "--data", str(tmp_path / "c.npy"), "--out", str(out), "--steps", "2", "--quiet"]) == 2
    assert "real numeric array" in _one_line(capsys) and _nothing_written(out)


def test_a_folder_mixing_grey_and_colour_loads_as_rgb(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB").save(tmp_path / "b.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA").save(tmp_path / "c.png")
    Image.fromarray(grey, "L").convert("P").save(tmp_path / "d.png")
    x, y = read_image_folder(tmp_path)
    assert x.shape == (4, 8, 8, 3) and x.dtype == np.uint8 and y is None
    np.testing.assert_array_equal(x[0], np.repeat(grey[..., None], 3, axis=-1))
    assert load_dataset(str(tmp_path)).info.shape == (3, 8, 8)


def test_a_folder_of_grey_images_stays_grey_and_sizes_are_named(tmp_path):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8), "L").save(tmp_path / f"{i}.png")
    assert read_image_folder(tmp_path)[0].shape == (2, 8, 8, 1)
    Image.fromarray(np.zeros((6, 10, 3), np.uint8), "RGB").save(tmp_path / "2.png")
    with pytest.raises(DataError, match=r"10x6, 8x8\); pass --image-size"):
        read_image_folder(tmp_path)
