"""Reading image folders and turning model-space images into pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.info import DataInfo
from ..errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


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
    preprocessing), so images of any size load; ``rgb``: convert grey images to RGB. A folder of grey images
    only loads as one channel; otherwise every image (grey, RGBA, palette) is converted to RGB."""
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
    if any(a.ndim == 2 for a in images) and any(a.ndim == 3 for a in images):  # grey among colour: all RGB
        images = [np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a for a in images]
    shapes = {a.shape[:2] for a in images}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}x{h}" for h, w in sorted(shapes)[:3])
        raise DataError(f"{path}: images have different sizes ({sizes}); pass --image-size to crop them")
    x = np.stack(images)
    if x.ndim == 3:
        x = x[..., None]
    y = None if labels[0] is None else np.asarray(labels, dtype=np.int64)
    return x, y


# --------------------------------------------------------------------------------------------- sample I/O
def to_uint8_images(x: np.ndarray, info: DataInfo) -> np.ndarray:
    """Model-layout images in data coordinates (N, C, H, W) -> uint8 (N, H, W, 3) as ADM's evaluation suite wants."""
    u = np.clip((x - info.lo) / (info.hi - info.lo), 0, 1)
    u = np.round(u * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    if u.shape[-1] == 1:
        u = np.repeat(u, 3, axis=-1)
    return u[..., :3]
