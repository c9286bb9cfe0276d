"""Data sets: built-in 2-D toys, scikit-learn digits, and user files; normalisation and sample I/O.

A data SPEC is a built-in name (``checkerboard``, ``8gaussians``, ``2spirals``, ``moons``, ``rings``,
``digits``) or a path: ``.npy`` (N x D vectors, or N x C x H x W / N x H x W x C / N x H x W images),
``.npz`` (array ``x``, optional integer labels ``y``), or a folder of images with one subfolder per class.

Models see normalised data; :class:`DataInfo` (saved as ``data.json`` in every run directory) holds the
affine map back to the data's own coordinates, its shape and layout, so a run can sample without the
data at hand and samples always come back in the data's own coordinates and layout.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.images import read_image_folder
from ..data.info import DataInfo, Dataset
from ..data.toys import TOYS
from ..errors import DataError


def _vector_info(name: str, x: Tensor, num_classes: int) -> DataInfo:
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return DataInfo(
        name=name, kind="vector", shape=tuple(x.shape[1:]), layout="vector", num_classes=num_classes,
        shift=mean.tolist(), scale=std.tolist(), lo=float(x.min()), hi=float(x.max()),
    )  # fmt: skip


def _image_info(name: str, x: Tensor, layout: str, num_classes: int, lo=None, hi=None) -> DataInfo:
    lo = float(x.min()) if lo is None else lo
    hi = float(x.max()) if hi is None else hi
    if hi <= lo:
        raise DataError(f"{name}: all pixels have the same value {lo}")
    return DataInfo(
        name=name, kind="image", shape=tuple(x.shape[1:]), layout=layout, num_classes=num_classes,
        shift=[(hi + lo) / 2], scale=[(hi - lo) / 2], lo=lo, hi=hi,
    )  # fmt: skip


def toy_dataset(name: str) -> Dataset:
    draw = TOYS.get(name)
    stats = draw(20_000, torch.Generator().manual_seed(0))
    return Dataset(_vector_info(name, stats, 0), draw=draw)


def digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16) as (1, 8, 8); fixed split, 360 held out."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = perm[:360], perm[360:]
    info = _image_info("digits", x, "nhw", 10, lo=0.0, hi=16.0)
    return Dataset(info, train_x=x[train], train_y=y[train], ref_x=x[test], ref_y=y[test])


BUILTIN = ["checkerboard", "8gaussians", "2spirals", "moons", "rings", "digits"]


# --------------------------------------------------------------------------------------------- files
MAX_CLASSES = 100_000


def _check_labels(y: np.ndarray, n: int, what: str) -> tuple[Tensor, int]:
    """Labels 0..K-1 with K = max + 1 classes; K is bounded (a stray label of 10^9 would make a conditional
    model allocate an embedding of 10^9 rows): at most :data:`MAX_CLASSES`, and at most the number of samples
    when that is above 1,000."""
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: labels 'y' must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels 'y' must be integers 0..K-1, got dtype {y.dtype}")
    if n == 0:
        return torch.zeros(0, dtype=torch.long), 0
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise DataError(f"{what}: labels 'y' must be integers 0..K-1, got {lo}")
    if hi + 1 > MAX_CLASSES or hi + 1 > max(n, 1000):
        raise DataError(f"{what}: label {hi} means {hi + 1} classes, more than {min(MAX_CLASSES, max(n, 1000))} "
                        f"(the limit for {n} samples); labels must be 0..K-1 with K classes")  # fmt: skip
    return torch.from_numpy(y.astype(np.int64)), hi + 1


def _check_real(a: np.ndarray, what: str | Path) -> np.ndarray:
    """Refuse complex, string, object and structured arrays (a complex array would lose its imaginary part)."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected a real numeric array, got dtype {a.dtype}")
    return a


def _layout_of(shape: tuple[int, ...], what: str) -> str:
    if len(shape) == 2:
        return "vector"
    if len(shape) == 3:
        return "nhw"
    if len(shape) == 4:
        if shape[1] in (1, 3, 4):
            return "nchw"
        if shape[3] in (1, 3, 4):
            return "nhwc"
        raise DataError(f"{what}: cannot tell the channel axis of images of shape {shape} (need 1, 3 or 4 channels)")
    raise DataError(f"{what}: expected N x D vectors or N x C x H x W / N x H x W x C images, got shape {shape}")


def array_dataset(x: np.ndarray, y: np.ndarray | None, what: str) -> Dataset:
    """A data set from arrays in the user's layout (see module docstring)."""
    _check_real(x, what)
    if len(x) < 2:
        raise DataError(f"{what}: need at least 2 samples, got {len(x)}")
    layout = _layout_of(x.shape, what)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())
        raise DataError(f"{what}: {bad} sample(s) contain NaN or infinite values")
    is_uint8 = x.dtype == np.uint8
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if layout == "nhwc":
        t = t.permute(0, 3, 1, 2).contiguous()
    elif layout == "nhw":
        t = t[:, None]
    labels, k = (None, 0) if y is None else _check_labels(y, len(x), what)
    name = os.path.basename(what)
    if layout == "vector":
        info = _vector_info(name, t, k)
    else:
        info = _image_info(name, t, layout, k, *((0.0, 255.0) if is_uint8 else (None, None)))
    return Dataset(info, train_x=t, train_y=labels, ref_x=t, ref_y=labels)


def _load_npy(path: Path) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a plain numeric .npy array ({e})") from None
    except Exception as e:  # noqa: BLE001 - numpy raises many types for corrupt files
        raise DataError(f"{path}: cannot read .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray):
        getattr(a, "close", lambda: None)()
        raise DataError(f"{path}: expected a .npy array, got a {type(a).__name__} (an .npz archive?)")
    return _check_real(a, path)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "x" if "x" in keys else "arr_0" if "arr_0" in keys else None
            if key is None:
                raise DataError(f"{path}: .npz must hold an array 'x' (and optional 'y'); found {keys}")
            x, y = z[key], (z["y"] if "y" in keys else None)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read .npz file ({type(e).__name__}: {e})") from None
    return _check_real(x, path), y


def latent_dataset(path: Path) -> Dataset:
    """A latent directory written by ``energen encode`` (see :mod:`energen.data.latents`), memory-mapped.

    Format 2 (posterior moments of both flips) gives a :class:`~energen.data.latents.LatentDataset`: a fresh
    posterior sample of a random flip per step. Format 1 (posterior means) trains as it always did, with a
    warning. Either way the model sees latents times the latent scale, and the reference set is (a fixed
    posterior sample of) the first 1,000 images."""
    from ..data.latents import LatentDataset, posterior_draw, read_latent_dir

    d = read_latent_dir(path)
    labels, k = (None, 0) if d.labels is None else _check_labels(d.labels, len(d.arrays), str(path))
    n_ref = min(len(d.arrays), 1000)
    if d.format == 1:
        msg = (f"{path}: latent directory of format 1 (posterior means): trains on the same mean each step and "
               "--hflip mirrors latents; re-encode it for posterior samples of exact flips")  # fmt: skip
        warnings.warn(msg, stacklevel=2)
        ref = torch.from_numpy(np.asarray(d.arrays[:n_ref], dtype=np.float32))
    else:
        ref = posterior_draw(d.arrays[:n_ref], seed=0)
    scale = float(d.meta["latent_scale"])
    info = DataInfo(name=path.name, kind="image", shape=d.latent_shape, layout="nchw", num_classes=k,
                    shift=[0.0], scale=[1.0 / scale], lo=float(ref.min()), hi=float(ref.max()),
                    decoder={"vae": d.meta["vae"], "latent_scale": scale})  # fmt: skip
    ref_y = None if labels is None else labels[:n_ref]
    if d.format == 1:
        return Dataset(info, train_x=d.arrays, train_y=labels, ref_x=ref, ref_y=ref_y)
    return LatentDataset(info, d.arrays, train_y=labels, ref_x=ref, ref_y=ref_y)


def load_dataset(spec: str, image_size: int | None = None) -> Dataset:
    """A built-in name or a path (see module docstring). Raises :class:`DataError` with one clear line.

    ``image_size``: image folders are centre-cropped to this square (any image size then loads)."""
    if spec in TOYS:
        return toy_dataset(spec)
    if spec == "digits":
        return digits_dataset()
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data {spec!r} is neither a built-in data set ({', '.join(BUILTIN)}) nor an existing path")
    if path.is_dir() and (path / "latents.json").is_file():
        return latent_dataset(path)
    if path.is_dir():
        x, y = read_image_folder(path, image_size=image_size)
    elif path.suffix == ".npy":
        x, y = _load_npy(path), None
    elif path.suffix == ".npz":
        x, y = _load_npz(path)
    else:
        raise DataError(f"{path}: unsupported data file; use .npy, .npz or a folder of images")
    return array_dataset(x, y, str(path))
