"""Small helpers shared by every module: broadcasting, reductions, per-sample noise, atomic writes."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor


def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample vector ``v`` of shape (B,) so that it broadcasts against ``x`` of shape (B, ...)."""
    return v.reshape(v.shape[0], *([1] * (x.dim() - 1)))


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def sum_flat(x: Tensor) -> Tensor:
    """Sum over all but the first dimension: shape (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def rms_flat(x: Tensor) -> Tensor:
    """Root-mean-square over every dimension but the first: (B, ...) -> (B,).

    Used as the size of a field: unlike the plain L2 norm it does not grow with the dimension, so one
    stopping tolerance means the same thing for 2-D points and for images.
    """
    return x.reshape(x.shape[0], -1).pow(2).mean(dim=1).sqrt()


def derived_seed(seed: int, stream: int) -> int:
    """The seed of another stream of randomness tied to ``seed``: ``seed + stream * 0x9E3779B9`` modulo 2**32.

    torch's CPU generator keeps only the low 32 bits of a seed (``manual_seed(s)`` and ``manual_seed(s + 2**32)``
    draw the same numbers), so streams must be told apart inside those bits; the odd golden-ratio stride
    keeps ``derived_seed(seed, k) + i`` away from ``seed + j`` for the small i, j of a batch.
    """
    return (int(seed) + int(stream) * 0x9E3779B9) % (1 << 32)


def derived_noise(seed: int, stream: int, n: int, shape: Sequence[int]) -> Tensor:
    """One standard normal draw of ``shape`` per sample ``i < n``, from the stream seeded
    ``derived_seed(seed, stream) + i``: noise tied to the samples' seeds, apart from their chains'."""
    first = derived_seed(seed, stream)
    return PerSampleNoise(range(first, first + n), shape)(range(n))


class PerSampleNoise:
    """Standard normal noise with one independent stream per sample (EDM's ``StackedRandomGenerator``).

    ``noise(idx)`` draws the next tensor of shape (len(idx), *shape) from the streams of samples ``idx``
    only. Sample ``i``'s draws depend only on ``seeds[i]`` and on how often it drew before, so a seed
    yields the same sample whatever the batch size, its position in the batch, or which other samples
    stopped early. Each stream is drawn ahead in chunks, so a step costs one gather, not one call per
    sample.
    """

    BUFFER_FLOATS = 1 << 24  # at most 16M buffered values over all streams

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], *, device=None, dtype=torch.float32):
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.shape, self.device, self.dtype = tuple(shape), device, dtype
        per_draw = max(1, len(self.gens) * math.prod(self.shape))
        self.chunk = int(min(64, max(1, self.BUFFER_FLOATS // per_draw)))
        self.buf = torch.empty(len(self.gens), self.chunk, *self.shape, dtype=dtype)
        self.pos = torch.full((len(self.gens),), self.chunk, dtype=torch.long)

    def __call__(self, idx: Tensor | Sequence[int]) -> Tensor:
        idx = idx.long().cpu() if isinstance(idx, Tensor) else torch.as_tensor(list(idx), dtype=torch.long)
        for i in idx[self.pos[idx] >= self.chunk].tolist():
            self.buf[i] = torch.randn(self.chunk, *self.shape, generator=self.gens[i], dtype=self.dtype)
            self.pos[i] = 0
        out = self.buf[idx, self.pos[idx]]
        self.pos[idx] += 1
        return out.to(self.device)


def is_integer(v) -> bool:
    """An integer read from JSON (not a boolean)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_finite_number(v) -> bool:
    """A finite number read from JSON (not a boolean)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_temp_target(name: str) -> str | None:
    """The file a temporary file named ``name`` of :func:`atomic_write_path` was to replace (``None`` when
    ``name`` is not one): ``.model.safetensors.k3j_9x2a.tmp`` -> ``model.safetensors``."""
    m = re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}\.tmp", name)
    return m[1] if m else None


@contextmanager
def atomic_write_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; on success it replaces ``path`` atomically.

    The body writes the temporary file however it likes (even by name, from another library). Then the
    file is fsynced, given the mode a newly created file gets (``0o666 & ~umask``), renamed over ``path``
    and the directory is fsynced. If the body raises, ``path`` is left as it was and the temporary file
    is removed. A reader sees either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # see atomic_temp_target
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_write_path`)."""
    with atomic_write_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
