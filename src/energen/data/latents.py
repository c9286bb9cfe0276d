"""Latent space: Stable-Diffusion VAE latents, encoded once and cached, decoded for export.

EqM's ImageNet models work on SD-VAE latents (4 x 32 x 32 for 256 px images) multiplied by 0.18215.
``energen encode`` runs the VAE once over an image folder and writes a latent directory::

    latents.npy    float16 (N, 4, H/8, W/8): the VAE posterior means, in the VAE's own units
    labels.npy     int64 (N,), when the folder has one subfolder per class
    latents.json   the VAE path, the latent scale, the image size, whether flips were added

Training reads it (``--data LATENT_DIR``) memory-mapped, so a data set larger than memory trains; the
model sees latents times the scale. A run trained on latents keeps the VAE path, and ``energen sample``
decodes to PNG / ADM ``.npz`` through it (``--vae`` names another copy).

The VAE is diffusers' ``AutoencoderKL`` loaded from a local folder (``save_pretrained`` layout, e.g. a
copy of ``stabilityai/sd-vae-ft-ema``); nothing is downloaded. diffusers is an optional extra:
``pip install -e ".[latent]"``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..utils import atomic_write_bytes, atomic_write_json

LATENT_SCALE = 0.18215  # SD-VAE latents are multiplied by this before the model sees them


MANIFEST = "latents.json"


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


def encode_images(images: np.ndarray, vae, *, batch_size: int = 32) -> np.ndarray:
    """uint8 (N, H, W, 3) -> posterior means (N, C, H/8, W/8), float32, in the VAE's units."""
    device = next(vae.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            out.append(vae.encode(x.to(device)).latent_dist.mean.float().cpu().numpy())
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


def write_latent_dir(out: Path, latents: np.ndarray, labels: np.ndarray | None, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in (("latents.npy", latents.astype(np.float16)), ("labels.npy", labels)):
        if arr is not None:
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(out / name, buf.getvalue())
    atomic_write_json(out / MANIFEST, meta)  # last: a directory with a manifest is complete


def encode_folder(folder: str | Path, vae_path: str | Path, out: str | Path, *, image_size: int,
                  flip: bool = False, device: str = "cpu", batch_size: int = 32) -> dict:  # fmt: skip
    """Centre-crop every image of ``folder`` to ``image_size``, encode it (and its mirror image when
    ``flip``), and write a latent directory; returns its manifest."""
    from ..data.images import read_image_folder

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose another --out")
    vae = load_vae(vae_path, device)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if image_size % factor:
        raise ConfigError(f"--image-size must be a multiple of {factor} (the VAE's downsampling), got {image_size}")
    images, labels = read_image_folder(Path(folder), image_size=image_size, rgb=True)
    z = encode_images(images, vae, batch_size=batch_size)
    if flip:
        z = np.concatenate([z, encode_images(np.ascontiguousarray(images[:, :, ::-1]), vae, batch_size=batch_size)])
        labels = None if labels is None else np.concatenate([labels, labels])
    meta = {"vae": str(Path(vae_path).resolve()), "latent_scale": LATENT_SCALE, "image_size": image_size,
            "flip": flip, "source": str(folder), "count": int(len(z))}  # fmt: skip
    write_latent_dir(out, z, labels, meta)
    return meta


def read_latent_dir(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(memory-mapped latents, labels or None, manifest) of a latent directory."""
    from ..training.checkpoint import read_json

    meta = read_json(path / MANIFEST)
    try:
        z = np.load(path / "latents.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(path / "labels.npy", allow_pickle=False) if (path / "labels.npy").exists() else None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable latent directory: {e}") from None
    if z.ndim != 4:
        raise DataError(f"{path}/latents.npy: expected (N, C, h, w) latents, got shape {z.shape}")
    return z, y, meta
