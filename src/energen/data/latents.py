"""Latent space: Stable-Diffusion VAE posteriors, encoded once and cached, sampled per step, decoded for export.

EqM's ImageNet models work on SD-VAE latents (4 x 32 x 32 for 256 px images) multiplied by 0.18215. The
reference draws, at every step, a fresh posterior sample of a randomly mirrored image
(``vae.encode(flip(x)).latent_dist.sample().mul_(0.18215)``, float32). ``energen encode`` runs the VAE once
over an image folder, on every image and on its mirror image (a mirrored image's latent is not the
mirrored latent), and writes a latent directory (format 2)::

    moments.npy    (N, 2, 2, C, H/8, W/8), float32 (or float16 with --dtype float16): axis 1 is the flip
                   (0: the image, 1: its mirror image), axis 2 the posterior's moment (0: mean, 1: std),
                   in the VAE's own units (diffusers' ``latent_dist.mean`` / ``latent_dist.std``)
    labels.npy     int64 (N,), when the folder has one subfolder per class
    latents.json   format 2, the VAE path, the latent scale, the image size, the storage dtype

ImageNet (1,281,167 images x 2 flips x 2 moments x 4 x 32 x 32) takes 84 GB in float32, 42 GB in float16.
Training reads it (``--data LATENT_DIR``) memory-mapped, so a data set larger than memory trains. Every
batch draws, per sample and from the training generator, a flip (with ``--hflip``; otherwise the image as
is) and a posterior sample ``z = mean + std * eps`` in float32; the model sees ``z * 0.18215``, as in the
reference. A run trained on latents keeps the VAE path, and ``energen sample`` decodes to PNG / ADM
``.npz`` through it (``--vae`` names another copy).

Older latent directories (format 1: ``latents.npy``, float16 posterior means, mirror images optionally
appended as extra rows) still train as they did, with a warning: the same mean every step, and
``--hflip`` mirrors the latent itself. Re-encode them for per-step posterior samples and exact flips.

The VAE is diffusers' ``AutoencoderKL`` loaded from a local folder (``save_pretrained`` layout, e.g. a
copy of ``stabilityai/sd-vae-ft-ema``); nothing is downloaded. diffusers is an optional extra:
``pip install -e ".[latent]"``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.info import DataInfo, Dataset
from ..errors import ConfigError, DataError
from ..utils import atomic_write_bytes, atomic_write_json, atomic_write_path

LATENT_SCALE = 0.18215  # SD-VAE latents are multiplied by this before the model sees them

MANIFEST = "latents.json"
FORMAT = 2  # latents.json "format": 2 = posterior moments of both flips; absent = 1, means only
DTYPES = ("float32", "float16")  # storage dtypes of moments.npy


def load_vae(path: str | Path, device: str | torch.device = "cpu"):
    """diffusers' AutoencoderKL from a local ``save_pretrained`` folder, in eval mode."""
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        raise ConfigError("latent mode needs diffusers: pip install -e '.[latent]'") from None
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"{path}: not a local AutoencoderKL folder (config.json and weights expected)")
    try:
        vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - diffusers raises many types
        raise ConfigError(f"{path}: cannot load the VAE: {str(e).splitlines()[0]}") from None
    return vae.to(device).eval().requires_grad_(False)


def posterior_moments(images: np.ndarray, vae, *, batch_size: int = 32) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 2, C, H/8, W/8): the VAE posterior's mean ([:, 0]) and std ([:, 1]),
    in the VAE's units. Pixels map to [-1, 1] as in the reference (``Normalize(0.5, 0.5)``)."""
    device = next(vae.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            post = vae.encode(x.to(device)).latent_dist
            out.append(torch.stack([post.mean, post.std], dim=1).float().cpu().numpy())
    return np.concatenate(out)


def decode_latents(z: Tensor, vae, *, batch_size: int = 32) -> np.ndarray:
    """Latents in the VAE's units (N, C, h, w) -> uint8 images (N, H, W, 3)."""
    device = next(vae.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch_size):
            x = vae.decode(z[i : i + batch_size].to(device).float()).sample
            u = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            out.append(u.permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def encode_folder(folder: str | Path, vae_path: str | Path, out: str | Path, *, image_size: int,
                  dtype: str = "float32", device: str = "cpu", batch_size: int = 32) -> dict:  # fmt: skip
    """Centre-crop every image of ``folder`` to ``image_size``, encode it and its mirror image, and write a
    latent directory (see the module docstring); returns its manifest. ``moments.npy`` is written batch by
    batch into a memory map, so the output need not fit in memory."""
    from ..data.images import read_image_folder

    if dtype not in DTYPES:
        raise ConfigError(f"latent dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    vae = load_vae(vae_path, device)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if image_size % factor:
        raise ConfigError(f"--image-size must be a multiple of {factor} (the VAE's downsampling), got {image_size}")
    images, labels = read_image_folder(Path(folder), image_size=image_size, rgb=True)
    n, c, h = len(images), int(vae.config.latent_channels), image_size // factor
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(out / "moments.npy") as tmp:
        moments = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, 2, 2, c, h, h))
        for i in range(0, n, batch_size):
            chunk = images[i : i + batch_size]
            moments[i : i + len(chunk), 0] = posterior_moments(chunk, vae, batch_size=batch_size)
            mirrored = np.ascontiguousarray(chunk[:, :, ::-1])  # (N, H, W, 3): W reversed
            moments[i : i + len(chunk), 1] = posterior_moments(mirrored, vae, batch_size=batch_size)
        moments.flush()
        del moments
    if labels is not None:
        buf = io.BytesIO()
        np.save(buf, labels)
        atomic_write_bytes(out / "labels.npy", buf.getvalue())
    meta = {"format": FORMAT, "vae": str(Path(vae_path).resolve()), "latent_scale": LATENT_SCALE,
            "image_size": image_size, "dtype": dtype, "source": str(folder), "count": n}  # fmt: skip
    atomic_write_json(out / MANIFEST, meta)  # last: a directory with a manifest is complete
    return meta


@dataclass
class LatentDir:
    """A latent directory as read: ``arrays`` is memory-mapped, (N, 2, 2, C, h, w) moments for format 2 and
    (N, C, h, w) posterior means for format 1; ``labels`` (N,) or None; ``meta`` the manifest."""

    format: int
    arrays: np.ndarray
    labels: np.ndarray | None
    meta: dict

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """(C, h, w) of one latent."""
        return tuple(self.arrays.shape[-3:])


def read_latent_dir(path: Path) -> LatentDir:
    """Read a latent directory of format 1 or 2 (see the module docstring), memory-mapped."""
    from ..training.checkpoint import read_json

    meta = read_json(path / MANIFEST)
    fmt = meta.get("format", 1)
    if fmt not in (1, FORMAT):
        raise DataError(f"{path}: latent directory format {fmt!r} is not known to this energen (1 or {FORMAT})")
    name, ndim = ("moments.npy", 6) if fmt == FORMAT else ("latents.npy", 4)
    try:
        z = np.load(path / name, mmap_mode="r", allow_pickle=False)
        y = np.load(path / "labels.npy", allow_pickle=False) if (path / "labels.npy").exists() else None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable latent directory: {e}") from None
    if z.ndim != ndim or (fmt == FORMAT and z.shape[1:3] != (2, 2)):
        expected = "(N, 2, 2, C, h, w) moments" if fmt == FORMAT else "(N, C, h, w) latents"
        raise DataError(f"{path}/{name}: expected {expected}, got shape {z.shape}")
    return LatentDir(fmt, z, y, meta)


class LatentDataset(Dataset):
    """Latent data as cached VAE posteriors: every batch is a fresh posterior sample of a random flip.

    Args:
        info: see :class:`DataInfo`; ``normalize`` turns VAE units into what the model sees (``z * 0.18215``).
        moments: (N, 2, 2, C, h, w), [image, flip (0: as is, 1: mirrored before encoding), (mean, std)], in the
            VAE's units, typically memory-mapped.
        train_y, ref_x, ref_y: as for :class:`Dataset`.

    ``batch(step, ...)`` picks the images as :class:`Dataset` does, then draws from ``generator``, per sample,
    the flip ``f ~ Bernoulli(1/2)`` (only with ``hflip``; else ``f = 0``) and ``eps ~ N(0, I)``:
    ``z = mean[f] + std[f] * eps`` in float32, the reference's ``vae.encode(flip(x)).latent_dist.sample()``.
    """

    def __init__(self, info: DataInfo, moments: np.ndarray, *, train_y=None, ref_x=None, ref_y=None):
        super().__init__(info, train_y=train_y, ref_x=ref_x, ref_y=ref_y)
        self.moments = moments

    @property
    def num_train(self) -> int:
        return len(self.moments)

    def _examples(self, idx: Tensor, generator: torch.Generator, hflip: bool) -> Tensor:
        flip = torch.rand(len(idx), generator=generator) < 0.5 if hflip else torch.zeros(len(idx), dtype=torch.bool)
        m = self.moments[idx.numpy(), flip.long().numpy()]  # (B, 2, C, h, w): reads only these rows
        m = torch.from_numpy(np.asarray(m, dtype=np.float32))
        eps = torch.randn(m[:, 0].shape, generator=generator)
        return self.info.normalize(m[:, 0] + m[:, 1] * eps)


def posterior_draw(moments: np.ndarray, seed: int) -> Tensor:
    """One fixed posterior sample per image, unmirrored: (N, 2, 2, C, h, w) -> float32 (N, C, h, w) in the
    VAE's units; the held-out reference of a format-2 latent directory."""
    m = torch.from_numpy(np.array(moments[:, 0], dtype=np.float32))  # a copy: memory maps are read-only
    return m[:, 0] + m[:, 1] * torch.randn(m[:, 0].shape, generator=torch.Generator().manual_seed(seed))
