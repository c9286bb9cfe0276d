"""Reading and writing samples, inputs and masks in the data's own layout and coordinates."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.datasets import _load_npy, _load_npz
from ..data.images import read_image_folder, to_uint8_images
from ..data.info import DataInfo
from ..errors import DataError


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
    from ..data.latents import decode_latents, load_vae

    return decode_latents(x, load_vae(vae, device or x.device))


def write_samples(x: Tensor, info: DataInfo, out: str | os.PathLike, *, first_index: int = 0,
                  vae: str | None = None, device=None) -> None:  # fmt: skip
    """Write samples (model layout, data coordinates): ``.npy`` float array in the user's layout,
    ``.npz`` ADM format (``arr_0``, uint8 N x H x W x 3, images only), or a directory of PNGs named by
    index from ``first_index`` (one shard of a sharded sampling run)."""
    from PIL import Image

    from ..utils import atomic_write_bytes

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

    from ..utils import atomic_write_bytes

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
