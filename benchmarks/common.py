"""Shared pieces of the benchmark scripts: train a run (or reuse it), score samples."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from energen import Run, TrainConfig, train
from energen.data import load_dataset
from energen.metrics import sliced_w1


def trained(root: Path, name: str, **cfg) -> tuple[Run, float]:
    """Train ``TrainConfig(**cfg)`` into ``root/name`` unless a finished run is there; returns (run, seconds).

    A directory left by an interrupted run is an error, not a result: delete it to retrain.
    """
    run_dir = root / name
    seconds = float("nan")
    if run_dir.exists():
        done = json.loads((run_dir / "resume.json").read_text())["step"] if (run_dir / "resume.json").exists() else -1
        if done != TrainConfig(**cfg).steps or not (run_dir / "sampler.json").exists():
            raise SystemExit(f"{run_dir} holds an unfinished run (step {done}); delete it or resume it")
    else:
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
