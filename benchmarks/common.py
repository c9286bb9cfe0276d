"""Shared pieces of the benchmark scripts: train a run (or reuse it), score samples."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from energen import Run, TrainConfig, train
from energen.data import load_dataset
from energen.metrics import sliced_w1


def trained(root: Path, name: str, **cfg) -> tuple[Run, float]:
    """Train ``TrainConfig(**cfg)`` into ``root/name`` unless it is already there; returns (run, seconds)."""
    run_dir = root / name
    seconds = float("nan")
    if not (run_dir / "model.safetensors").exists():
        t0 = time.time()
        train(TrainConfig(**cfg), run_dir, progress=False)
        seconds = time.time() - t0
    return Run(run_dir), seconds


def reference(data: str, n: int = 10_000):
    ds = load_dataset(data)
    return ds, ds.reference(n)[0]


def sw1(run: Run, x: torch.Tensor, ref: torch.Tensor) -> float:
    """Sliced W1 in units of the data's per-dimension standard deviation."""
    s = torch.tensor(run.info.scale)
    return sliced_w1(x / s, ref / s)
