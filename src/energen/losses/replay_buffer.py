"""The replay buffer of contrastive divergence: persistent chains, with a state dict."""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import BUFFER_INITS

DATA_START_NOISE = 0.3  # std of the noise added to data points that start fresh chains (init "data"), and the


class ReplayBuffer:
    """A ring (FIFO) or reservoir of past chain ends from which new chains start.

    ``sample`` draws each chain from the buffer with probability ``1 - reinit`` and fresh from ``init``
    otherwise; until the buffer holds one batch, every chain starts fresh.
    The buffer has its own seeded generator; its contents, fill level and generator state are its
    ``state_dict`` and go into the run's resume state, so a resumed run continues bit-identically.

    Args:
        size: capacity.
        shape: per-sample shape.
        reinit: fraction of chains started afresh (IGEBM 0.05, ICD 0.001).
        box: ``(lo, hi)`` of the uniform starting distribution (normalised data coordinates).
        seed: seed of the buffer's generator.
        reservoir: keep a uniform sample of all pushed points (reservoir sampling) instead of the latest.
        init: where fresh chains start: ``"uniform"`` in ``box`` (IGEBM), ``"normal"``, a standard normal
            draw, where ``energen sample`` starts its chains from noise, or ``"data"``: the batch's data points
            plus noise of std ``DATA_START_NOISE`` (CD-k's start; ``sample`` is then given the batch).
    """

    def __init__(self, size: int, shape: tuple[int, ...], *, reinit: float, box: tuple[float, float], seed: int,
                 reservoir: bool = False, init: str = "uniform"):  # fmt: skip
        if size < 1 or not 0 <= reinit <= 1:
            raise ValueError("buffer needs size >= 1 and reinit in [0, 1]")
        if init not in BUFFER_INITS:
            raise ValueError(f"buffer init must be one of {BUFFER_INITS}, got {init!r}")
        self.size, self.shape, self.reinit, self.box, self.reservoir = size, tuple(shape), reinit, box, reservoir
        self.init = init
        self.data = torch.zeros((size, *self.shape))
        self.count = 0  # points held
        self.seen = 0  # points ever pushed
        self.generator = torch.Generator().manual_seed(seed)

    def noise(self, n: int, data: Tensor | None = None) -> Tensor:
        if self.init == "data":
            if data is None:
                raise ValueError("a buffer with init 'data' starts fresh chains from data: pass the batch")
            return data.detach().float().cpu() + DATA_START_NOISE * torch.randn(data.shape, generator=self.generator)
        if self.init == "normal":
            return torch.randn((n, *self.shape), generator=self.generator)
        lo, hi = self.box
        return lo + (hi - lo) * torch.rand((n, *self.shape), generator=self.generator)

    def sample(self, n: int, data: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``n`` chain starts (CPU) and a boolean mask of those drawn fresh (``data``: the batch, for init "data")."""
        fresh = torch.ones(n, dtype=torch.bool)
        x = self.noise(n, data)
        if self.count >= n:
            fresh = torch.rand(n, generator=self.generator) < self.reinit
            idx = torch.randint(0, self.count, (n,), generator=self.generator)
            x = torch.where(fresh.reshape(-1, *[1] * len(self.shape)), x, self.data[idx])
        return x, fresh

    def push(self, x: Tensor) -> None:
        x = x.detach().float().cpu()
        for row in x:
            if self.count < self.size:
                slot = self.count
                self.count += 1
            elif self.reservoir:
                slot = int(torch.randint(0, self.seen + 1, (), generator=self.generator))
                if slot >= self.size:
                    self.seen += 1
                    continue
            else:
                slot = self.seen % self.size
            self.data[slot] = row
            self.seen += 1

    def draw(self, n: int) -> Tensor:
        """``n`` random points of the buffer (all it holds if fewer)."""
        idx = torch.randperm(self.count, generator=self.generator)[:n]
        return self.data[idx]

    def state_dict(self) -> dict[str, Tensor]:
        return {"data": self.data[: self.count].clone(), "seen": torch.tensor(self.seen),
                "rng": self.generator.get_state()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        data = state["data"]
        if data.shape[1:] != self.shape or len(data) > self.size:
            raise ValueError(f"buffer state of shape {tuple(data.shape)} does not fit size {self.size} x {self.shape}")
        self.count = len(data)
        self.data.zero_()
        self.data[: self.count] = data
        self.seen = int(state["seen"])
        self.generator.set_state(state["rng"])
