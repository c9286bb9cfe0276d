"""Data sets: built-in 2-D toys, scikit-learn digits, and user files; normalisation and sample I/O.

A data SPEC is a built-in name (``checkerboard``, ``8gaussians``, ``2spirals``, ``moons``, ``rings``,
``digits``) or a path: ``.npy`` (N x D vectors, or N x C x H x W / N x H x W x C / N x H x W images),
``.npz`` (array ``x``, optional integer labels ``y``), or a folder of images with one subfolder per class.

Models see normalised data; :class:`DataInfo` (saved as ``data.json`` in every run directory) holds the
affine map back to the data's own coordinates, its shape and layout, so a run can sample without the
data at hand and samples always come back in the data's own coordinates and layout.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .registry import Registry

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class DataInfo:
    """Everything about a data set that a trained run needs to sample and export without the data.

    ``normalised = (x - shift) / scale``, where shift/scale have one entry (images) or one per dimension
    (vectors). ``layout`` is how the user's arrays are laid out: ``vector``, ``nchw``, ``nhwc`` or ``nhw``;
    the model always sees (C, H, W). ``lo``/``hi`` is the data's value range, used to export images.
    """

    name: str
    kind: str  # "vector" | "image"
    shape: tuple[int, ...]  # per-sample shape the model sees: (D,) or (C, H, W)
    layout: str
    num_classes: int
    shift: list[float]
    scale: list[float]
    lo: float
    hi: float
    decoder: dict | None = None  # latent data: {"vae": path, "latent_scale": s}; images come from decoding

    def affine(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(shift, scale) shaped to broadcast against a batch like ``like``."""
        shape = (1, *self.shape) if self.kind == "vector" else (1,) * (1 + len(self.shape))
        shift = torch.tensor(self.shift, dtype=like.dtype, device=like.device).reshape(shape)
        scale = torch.tensor(self.scale, dtype=like.dtype, device=like.device).reshape(shape)
        return shift, scale

    def normalize(self, x: Tensor) -> Tensor:
        """Data coordinates, model layout (B, *shape) -> normalised."""
        shift, scale = self.affine(x)
        return (x - shift) / scale

    def denormalize(self, z: Tensor) -> Tensor:
        """Normalised (B, *shape) -> data coordinates, model layout."""
        shift, scale = self.affine(z)
        return z * scale + shift

    def to_user_layout(self, x: np.ndarray) -> np.ndarray:
        """Model layout (B, C, H, W) -> the user's layout (as the data set was given)."""
        if self.layout == "nhwc":
            return x.transpose(0, 2, 3, 1)
        if self.layout == "nhw":
            return x[:, 0]
        return x

    @property
    def user_shape(self) -> tuple[int, ...]:
        """One sample's shape in the user's layout."""
        if self.layout == "nhwc":
            return (self.shape[1], self.shape[2], self.shape[0])
        return tuple(self.shape[1:]) if self.layout == "nhw" else tuple(self.shape)

    def from_user_layout(self, x: np.ndarray, what: str) -> np.ndarray:
        """The user's layout -> model layout, checking the shape."""
        expected = self.user_shape
        if x.ndim != 1 + len(expected) or tuple(x.shape[1:]) != tuple(expected):
            raise DataError(f"{what}: expected arrays of shape (N, {', '.join(map(str, expected))}), got {x.shape}")
        if self.layout == "nhwc":
            return x.transpose(0, 3, 1, 2)
        if self.layout == "nhw":
            return x[:, None]
        return x

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> DataInfo:
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


class Dataset:
    """A data set in model layout and data coordinates, with a fixed train/reference split.

    Args:
        info: see :class:`DataInfo`.
        train_x, train_y: training data (data coordinates), or ``None`` for a toy drawn fresh each batch.
        ref_x, ref_y: held-out data that metrics compare against.
        draw: for toys, ``draw(n, generator) -> Tensor`` of fresh points.
    """

    def __init__(self, info: DataInfo, *, train_x=None, train_y=None, ref_x=None, ref_y=None, draw=None):
        self.info, self.draw = info, draw
        self.train_x, self.train_y, self.ref_x, self.ref_y = train_x, train_y, ref_x, ref_y
        # a numpy array (memory-mapped latents) is read and normalised one batch at a time
        self._train_norm = None if train_x is None or isinstance(train_x, np.ndarray) else info.normalize(train_x)

    @property
    def num_train(self) -> int | None:
        return None if self.train_x is None else len(self.train_x)

    def batch(self, step: int, batch_size: int, generator: torch.Generator, *, rank: int = 0, world: int = 1,
              hflip: bool = False):  # fmt: skip
        """The normalised training batch of one rank at one optimiser step: (x, y or None).

        Finite data is visited in epochs, each in the order of a permutation seeded by the epoch number,
        so the batch is a function of ``step`` only: resuming needs no data-loader state. Toys are drawn
        fresh from ``generator``. ``batch_size`` is the global batch; each rank takes its slice. ``hflip``:
        each image is mirrored left-right with probability 1/2 (drawn from ``generator``).
        """
        per_rank = batch_size // world
        if self.draw is not None:
            return self.info.normalize(self.draw(per_rank, generator)), None
        n = self.num_train
        pos = torch.arange(step * batch_size + rank * per_rank, step * batch_size + (rank + 1) * per_rank)
        epochs = pos // n
        idx = torch.empty_like(pos)
        for e in epochs.unique().tolist():
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(1_000_003 * (e + 1)))
            sel = epochs == e
            idx[sel] = perm[pos[sel] % n]
        y = None if self.train_y is None else self.train_y[idx]
        if self._train_norm is None:
            x = self.info.normalize(torch.from_numpy(np.asarray(self.train_x[idx.numpy()], dtype=np.float32)))
        else:
            x = self._train_norm[idx]
        if hflip:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
        return x, y

    def reference(self, n: int | None = None, seed: int = 12345) -> tuple[Tensor, Tensor | None]:
        """Held-out data in data coordinates: fresh draws for toys, the test split otherwise."""
        if self.draw is not None:
            return self.draw(n or 10_000, torch.Generator().manual_seed(seed)), None
        x, y = self.ref_x, self.ref_y
        if n is not None and n < len(x):
            x, y = x[:n], (None if y is None else y[:n])
        return x, y


# --------------------------------------------------------------------------------------------- toys
TOYS: Registry[Callable[[int, torch.Generator], Tensor]] = Registry("toy data set")


def _rand(n, g, *shape):
    return torch.rand(n, *shape, generator=g)


def _randn(n, g, *shape):
    return torch.randn(n, *shape, generator=g)


@TOYS.register("checkerboard")
def checkerboard(n: int, g: torch.Generator) -> Tensor:
    """8 alternating unit squares of a 4 x 4 board on [-4, 4]^2 (the FFJORD toy)."""
    x1 = _rand(n, g) * 4 - 2
    x2 = _rand(n, g) - torch.randint(0, 2, (n,), generator=g).float() * 2
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2


@TOYS.register("8gaussians")
def eight_gaussians(n: int, g: torch.Generator) -> Tensor:
    """8 Gaussians (std 0.5/sqrt 2) on a circle of radius 4/sqrt 2."""
    k = torch.randint(0, 8, (n,), generator=g).float()
    centers = torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], dim=1) * 4
    return (centers + 0.5 * _randn(n, g, 2)) / math.sqrt(2)


@TOYS.register("2spirals")
def two_spirals(n: int, g: torch.Generator) -> Tensor:
    """Two interleaved spirals (the FFJORD toy)."""
    m = n // 2 + n % 2
    r = torch.sqrt(_rand(m, g)) * 540 * (2 * math.pi) / 360
    d1 = torch.stack([-torch.cos(r) * r + _rand(m, g) * 0.5, torch.sin(r) * r + _rand(m, g) * 0.5], dim=1)
    x = torch.cat([d1, -d1])[:n] / 3
    return x + 0.1 * _randn(n, g, 2)


@TOYS.register("moons")
def moons(n: int, g: torch.Generator) -> Tensor:
    """Two interleaving half circles (as scikit-learn's ``make_moons``, noise 0.1)."""
    inner = torch.randint(0, 2, (n,), generator=g).bool()
    a = _rand(n, g) * math.pi
    outer_pts = torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    inner_pts = torch.stack([1 - torch.cos(a), 0.5 - torch.sin(a)], dim=1)
    return torch.where(inner[:, None], inner_pts, outer_pts) + 0.1 * _randn(n, g, 2)


@TOYS.register("rings")
def rings(n: int, g: torch.Generator) -> Tensor:
    """Four concentric circles of radii 1..4 (x 0.75) with small radial noise."""
    k = torch.randint(1, 5, (n,), generator=g).float() * 0.75
    a = _rand(n, g) * 2 * math.pi
    return torch.stack([torch.cos(a), torch.sin(a)], dim=1) * k[:, None] + 0.08 * _randn(n, g, 2)


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
def _check_labels(y: np.ndarray, n: int, what: str) -> tuple[Tensor, int]:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: labels 'y' must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise DataError(f"{what}: labels 'y' must be non-negative integers")
    return torch.from_numpy(y.astype(np.int64)), int(y.max()) + 1


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
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{what}: expected a numeric array, got dtype {x.dtype}")
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
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: not a plain numeric .npy array ({e})") from None
    except Exception as e:  # noqa: BLE001 - numpy raises many types for corrupt files
        raise DataError(f"{path}: cannot read .npy file ({type(e).__name__}: {e})") from None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "x" if "x" in keys else "arr_0" if "arr_0" in keys else None
            if key is None:
                raise DataError(f"{path}: .npz must hold an array 'x' (and optional 'y'); found {keys}")
            return z[key], (z["y"] if "y" in keys else None)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read .npz file ({type(e).__name__}: {e})") from None


def center_crop(im, size: int) -> np.ndarray:
    """ADM's ``center_crop_arr``: halve with a box filter while the short side is >= 2 size, resize the
    short side to ``size`` (bicubic), crop the centre square."""
    from PIL import Image

    while min(*im.size) >= 2 * size:
        im = im.resize(tuple(x // 2 for x in im.size), resample=Image.BOX)
    scale = size / min(*im.size)
    im = im.resize(tuple(round(x * scale) for x in im.size), resample=Image.BICUBIC)
    arr = np.asarray(im)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


def read_image_folder(path: Path, image_size: int | None = None, rgb: bool = False):
    """PNG/JPEG files directly in ``path`` (no labels) or in one subfolder per class (sorted names):
    (uint8 (N, H, W, C), labels or None). ``image_size``: centre-crop each image to that square (ADM's
    preprocessing), so images of any size load; ``rgb``: convert grey images to RGB."""
    from PIL import Image

    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    groups = [(i, sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTS)) for i, d in enumerate(subdirs)]
    if not subdirs:
        groups = [(None, sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTS))]
    files = [(label, f) for label, fs in groups for f in fs]
    if not files:
        raise DataError(f"{path}: no image files ({', '.join(IMAGE_EXTS)}) found")
    images, labels = [], []
    for label, f in files:
        try:
            with Image.open(f) as im:
                grey = im.mode in ("L", "1", "I;16") and not rgb
                im = im.convert("L" if grey else "RGB")
                images.append(np.asarray(im) if image_size is None else center_crop(im, image_size))
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{f}: cannot read image ({e})") from None
        labels.append(label)
    shapes = {a.shape for a in images}
    if len(shapes) > 1:
        raise DataError(f"{path}: images have different sizes {sorted(shapes)[:3]}; pass --image-size to crop them")
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., None]
    y = None if labels[0] is None else np.asarray(labels, dtype=np.int64)
    return x, y


def latent_dataset(path: Path) -> Dataset:
    """A latent directory written by ``energen encode`` (see :mod:`energen.latents`), memory-mapped."""
    from .latents import read_latent_dir

    z, y, meta = read_latent_dir(path)
    labels, k = (None, 0) if y is None else _check_labels(y, len(z), str(path))
    ref = torch.from_numpy(np.asarray(z[: min(len(z), 1000)], dtype=np.float32))
    scale = float(meta["latent_scale"])
    lo, hi = float(ref.min()), float(ref.max())
    info = DataInfo(name=path.name, kind="image", shape=tuple(z.shape[1:]), layout="nchw", num_classes=k,
                    shift=[0.0], scale=[1.0 / scale], lo=lo, hi=hi,
                    decoder={"vae": meta["vae"], "latent_scale": scale})  # fmt: skip
    return Dataset(info, train_x=z, train_y=labels, ref_x=ref, ref_y=None if labels is None else labels[: len(ref)])


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


# --------------------------------------------------------------------------------------------- sample I/O
def to_uint8_images(x: np.ndarray, info: DataInfo) -> np.ndarray:
    """Model-layout images in data coordinates (N, C, H, W) -> uint8 (N, H, W, 3) as ADM's evaluation suite wants."""
    u = np.clip((x - info.lo) / (info.hi - info.lo), 0, 1)
    u = np.round(u * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    if u.shape[-1] == 1:
        u = np.repeat(u, 3, axis=-1)
    return u[..., :3]


def image_decoder(info: DataInfo, vae: str | None = None) -> str | None:
    """Check that samples of ``info`` can be written as images; returns the VAE folder that decodes them
    (latent data) or ``None`` (pixel data). Call it before sampling, so a bad output fails at once."""
    if info.kind != "image":
        raise DataError("image output (PNG, ADM .npz) is for images; write vector samples to a .npy file")
    if info.decoder is None:
        return None
    vae = vae or info.decoder.get("vae")
    if vae is None:
        raise DataError("this run holds VAE latents; pass --vae with the local AutoencoderKL folder to decode them")
    return vae


def sample_images(x: Tensor, info: DataInfo, vae: str | None = None, device=None) -> np.ndarray:
    """Samples (model layout, data coordinates) -> uint8 images (N, H, W, 3); latent runs are decoded by
    their VAE (``vae`` names another copy of it) on ``device``."""
    vae = image_decoder(info, vae)
    if vae is None:
        return to_uint8_images(x.detach().cpu().float().numpy(), info)
    from .latents import decode_latents, load_vae

    return decode_latents(x, load_vae(vae, device or x.device))


def write_samples(x: Tensor, info: DataInfo, out: str | os.PathLike, *, first_index: int = 0,
                  vae: str | None = None, device=None) -> None:  # fmt: skip
    """Write samples (model layout, data coordinates): ``.npy`` float array in the user's layout,
    ``.npz`` ADM format (``arr_0``, uint8 N x H x W x 3, images only), or a directory of PNGs named by
    index from ``first_index`` (one shard of a sharded sampling run)."""
    from PIL import Image

    from .utils import atomic_write_bytes

    out = Path(out)
    buf = io.BytesIO()
    if out.suffix == ".npy":
        arr = x.detach().cpu().float().numpy()
        np.save(buf, info.to_user_layout(arr) if info.kind == "image" else arr)
        atomic_write_bytes(out, buf.getvalue())
    elif out.suffix == ".npz":
        np.savez(buf, arr_0=sample_images(x, info, vae, device))
        atomic_write_bytes(out, buf.getvalue())
    else:
        names = [out / f"{i:06d}.png" for i in range(first_index, first_index + len(x))]
        if any(f.exists() for f in names):
            raise DataError(f"{out}: already holds samples with these numbers; choose a new directory")
        u8 = sample_images(x, info, vae, device)
        out.mkdir(parents=True, exist_ok=True)
        grey = info.shape[0] == 1 and info.decoder is None
        for i, im in enumerate(u8, start=first_index):
            Image.fromarray(im[..., 0] if grey else im).save(out / f"{i:06d}.png")


def png_folder_to_npz(folder: Path, n: int, out: Path) -> None:
    """Gather ``000000.png`` ... of a sample folder into an ADM ``.npz``, checking there are exactly ``n``."""
    from PIL import Image

    from .utils import atomic_write_bytes

    files = [folder / f"{i:06d}.png" for i in range(n)]
    missing = [f.name for f in files if not f.is_file()]
    if missing or len(list(folder.glob("*.png"))) != n:
        raise DataError(f"{folder}: expected exactly {n} PNGs 000000.png...; missing {missing[:3]}")
    arr = []
    for f in files:
        with Image.open(f) as im:
            arr.append(np.asarray(im.convert("RGB")))
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.stack(arr))
    atomic_write_bytes(out, buf.getvalue())


def read_samples(path: str | os.PathLike, info: DataInfo) -> Tensor:
    """Read samples written by :func:`write_samples` (or by another tool in the same formats) back into
    model layout and data coordinates, checking their shape against ``info``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"samples {str(path)!r} do not exist")
    if path.suffix == ".npy":
        x = _load_npy(path)
    elif path.suffix == ".npz" or path.is_dir():
        u8, _ = _load_npz(path) if path.suffix == ".npz" else read_image_folder(path)
        if info.kind != "image":
            raise DataError(f"{path}: image samples given for vector data {info.name!r}")
        if u8.ndim != 4 or u8.shape[1:3] != tuple(info.shape[1:]):
            raise DataError(f"{path}: expected images of size {info.shape[1]}x{info.shape[2]}, got shape {u8.shape}")
        u = u8.astype(np.float32) / 255.0
        c = info.shape[0]
        u = u.mean(axis=-1, keepdims=True) if c == 1 else u[..., :c]
        return torch.from_numpy(u.transpose(0, 3, 1, 2) * (info.hi - info.lo) + info.lo).float()
    else:
        raise DataError(f"{path}: unsupported samples file; use .npy, .npz or a directory of PNGs")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: expected a numeric array, got dtype {x.dtype}")
    if info.kind == "image":
        x = info.from_user_layout(x, str(path))
    elif x.ndim != 2 or x.shape[1] != info.shape[0]:
        raise DataError(f"{path}: expected samples of shape (N, {info.shape[0]}), got {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: samples contain NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x)).float()


def read_mask(path: str | os.PathLike, info: DataInfo) -> Tensor:
    """An in-painting mask from ``.npy`` (1 or True: known, 0: to fill) in the layout of the run's data: the
    shape of one sample, or of a batch. Returns model layout: shape ``info.shape`` or (N, *info.shape)."""
    path = Path(path)
    if path.suffix != ".npy" or not path.exists():
        raise DataError(f"mask {str(path)!r}: expected an existing .npy file")
    m = _load_npy(path)
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise DataError(f"{path}: expected a numeric or boolean mask, got dtype {m.dtype}")
    single = m.ndim == len(info.user_shape)  # one sample's mask
    m = info.from_user_layout(m[None] if single else m, str(path))
    t = torch.from_numpy(np.ascontiguousarray(m)).float()
    return t[0] if single else t
