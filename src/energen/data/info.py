"""What a data set is: its description (shape, layout, normalisation) and its batches."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError, DataError
from ..utils import is_finite_number, is_integer

KINDS = {"vector": ("vector",), "image": ("nchw", "nhwc", "nhw")}  # kind -> the layouts it can have


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

    def box(self) -> tuple[float, float]:
        """The data's value range in normalised coordinates: images as they are; vectors the box holding every
        dimension's range, widened by 5% of its width on each side."""
        lo = [(self.lo - s) / c for s, c in zip(self.shift, self.scale, strict=True)]
        hi = [(self.hi - s) / c for s, c in zip(self.shift, self.scale, strict=True)]
        a, b = min(lo), max(hi)
        pad = 0.05 * (b - a) if self.kind == "vector" else 0.0
        return a - pad, b + pad

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict, *, where: str = "data.json") -> DataInfo:
        """A description from its JSON form (a run's ``data.json``), every field checked: a hand-edited or
        corrupt file is a :class:`CheckpointError` naming ``where`` and the field."""

        def bad(key: str, what: str, value) -> CheckpointError:
            return CheckpointError(f"{where}: {key} must be {what}, got {value!r}")

        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: expected a JSON object")
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(d) - set(names)), [k for k in names if k not in d and k != "decoder"]
        if unknown or missing:
            raise CheckpointError(f"{where}: " + "; ".join(
                ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing key(s) {', '.join(missing)}"] if missing else [])))  # fmt: skip
        d = dict(d)
        if not isinstance(d["name"], str):
            raise bad("name", "a string", d["name"])
        if d["kind"] not in KINDS:
            raise bad("kind", f"one of {', '.join(KINDS)}", d["kind"])
        if d["layout"] not in KINDS[d["kind"]]:
            raise bad("layout", f"one of {', '.join(KINDS[d['kind']])} for {d['kind']} data", d["layout"])
        shape, dims = d["shape"], 1 if d["kind"] == "vector" else 3
        if not (isinstance(shape, list | tuple) and len(shape) == dims and all(is_integer(n) and n > 0 for n in shape)):
            raise bad("shape", f"a list of {dims} positive integer(s)", shape)
        d["shape"] = tuple(shape)
        if not (is_integer(d["num_classes"]) and d["num_classes"] >= 0):
            raise bad("num_classes", "an integer >= 0", d["num_classes"])
        entries = math.prod(shape) if d["kind"] == "vector" else 1
        for key in ("shift", "scale"):
            v = d[key]
            if not (isinstance(v, list) and len(v) == entries and all(is_finite_number(x) for x in v)):
                raise bad(key, f"a list of {entries} finite number(s)", v)
            d[key] = [float(x) for x in v]
        if not all(d["scale"]):
            raise bad("scale", "nonzero in every entry", d["scale"])
        for key in ("lo", "hi"):
            if not is_finite_number(d[key]):
                raise bad(key, "a finite number", d[key])
            d[key] = float(d[key])
        if d["hi"] < d["lo"] or d["hi"] == d["lo"] and d["kind"] == "image":
            raise CheckpointError(f"{where}: lo must be below hi, got lo={d['lo']!r}, hi={d['hi']!r}")
        decoder = d.get("decoder")
        if decoder is not None:
            if not isinstance(decoder, dict) or d["kind"] != "image":
                raise bad("decoder", "null or (image data) an object {vae, latent_scale}", decoder)
            if not isinstance(decoder.get("vae"), str | None):
                raise bad("decoder.vae", "a path or null", decoder.get("vae"))
            if not (is_finite_number(decoder.get("latent_scale")) and decoder["latent_scale"] > 0):
                raise bad("decoder.latent_scale", "a finite number > 0", decoder.get("latent_scale"))
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
        so which examples a batch holds is a function of ``step`` only: resuming needs no data-loader state.
        Everything random is drawn from ``generator``: toys, flips and (latent data) posterior samples.
        ``batch_size`` is the global batch; each rank takes its slice. ``hflip``: each image is mirrored
        left-right with probability 1/2.
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
        return self._examples(idx, generator, hflip), y

    def _examples(self, idx: Tensor, generator: torch.Generator, hflip: bool) -> Tensor:
        """The normalised training examples ``idx`` (B,), each mirrored with probability 1/2 when ``hflip``."""
        if self._train_norm is None:
            x = self.info.normalize(torch.from_numpy(np.asarray(self.train_x[idx.numpy()], dtype=np.float32)))
        else:
            x = self._train_norm[idx]
        if hflip:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
        return x

    def reference(self, n: int | None = None, seed: int = 12345) -> tuple[Tensor, Tensor | None]:
        """Held-out data in data coordinates: fresh draws for toys, the test split otherwise."""
        if self.draw is not None:
            return self.draw(n or 10_000, torch.Generator().manual_seed(seed)), None
        x, y = self.ref_x, self.ref_y
        if n is not None and n < len(x):
            x, y = x[:n], (None if y is None else y[:n])
        return x, y
