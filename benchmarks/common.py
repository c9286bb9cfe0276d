"""Shared pieces of the benchmark scripts: train a run (or reuse it), score samples, digits helpers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from energen import Run, TrainConfig, train
from energen.data.datasets import load_dataset
from energen.evaluation.metrics import sliced_w1


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


def density_samples(run: Run, n: int, *, cells: int = 400, seed: int = 0) -> torch.Tensor:
    """``n`` draws from the run's density exp(-E / T) (T: its sampler's temperature, 1 for smc), discretised on a
    ``cells`` x ``cells`` grid over the data's range widened by a quarter on each side: a cell by its
    probability, then a uniform point in it. Samples the learned density itself, with no chain; 2-D only."""
    lo, hi = float(run.info.lo), float(run.info.hi)
    pad = 0.25 * (hi - lo)
    edges = torch.linspace(lo - pad, hi + pad, cells + 1, dtype=torch.float64)
    mid = (edges[1:] + edges[:-1]) / 2
    gx, gy = torch.meshgrid(mid, mid, indexing="xy")
    e = torch.cat([run.energy(c.float()).double() for c in torch.stack([gx.ravel(), gy.ravel()], 1).split(20_000)])
    g = torch.Generator().manual_seed(seed)
    i = torch.multinomial(torch.softmax(-e / run.temperature, 0), n, replacement=True, generator=g)
    x = torch.stack([gx.ravel()[i], gy.ravel()[i]], 1)
    return (x + (torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5) * (edges[1] - edges[0])).float()


def region_mass(x: torch.Tensor, ref: torch.Tensor, k: int = 8) -> tuple[float, float]:
    """The smallest and largest ratio, over ``k`` k-means regions of the data ``ref``, of the share of ``x`` in a
    region to the data's share: 1 / 1 when ``x`` weights every region as the data do, near 0 for a region ``x``
    misses (a mode a density plot does not show)."""
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=4, random_state=0).fit(ref.double().numpy())
    share = [np.bincount(km.predict(v.double().numpy()), minlength=k) / len(v) for v in (x, ref)]
    ratio = share[0] / share[1]
    return float(ratio.min()), float(ratio.max())


def off_support(run: Run, x: torch.Tensor, ref: torch.Tensor, fresh: torch.Tensor) -> float:
    """The share of ``x`` farther from its nearest point of ``ref`` than 99% of ``fresh`` data points are (in
    data standard deviations): 0.01 for samples of the data, more for mass in the gaps between modes (which
    ``region_mass`` and, where the gaps are narrow, sliced W1 hardly see)."""
    s = torch.tensor(run.info.scale)

    def nearest(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(c / s, ref / s).min(1).values for c in v.split(1000)])

    return float((nearest(x) > nearest(fresh).quantile(0.99)).float().mean())


def digits_args() -> argparse.Namespace:
    """The options both digits benchmarks take."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="bench-runs")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--cfg", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    return p.parse_args()


def save_digit_grid(x: torch.Tensor, info, path: Path) -> None:
    """The first 100 images of ``x`` (data coordinates) as a PNG grid, each pixel drawn 4x4."""
    from energen.plotting import image_grid

    Image.fromarray(np.kron(image_grid(x[:100].numpy(), info), np.ones((4, 4, 1), dtype=np.uint8))).save(path)


def class_samples(run: Run, cfg_scale: float, n: int = 200):
    """Yield ``(c, samples of class c)`` for the ten digit classes, class c seeded ``1000 * c``."""
    for c in range(10):
        yield c, run.sample(n, seed=1000 * c, label=c, cfg_scale=cfg_scale)[0]


def print_class_accuracy(runs: dict[str, Run], clf, cfg_scales, root: Path, what: str = "method") -> None:
    """The table of :func:`class_accuracy` of each run at each guidance weight; saves each grid as
    ``root/digits-<name>-cond-cfg<w>.png``."""
    print(f"\n| {what} | cfg | class accuracy |\n|---|---|---|")
    for name, run in runs.items():
        for w in cfg_scales:
            acc, grid = class_accuracy(run, clf, w)
            print(f"| {name} | {w:g} | {acc:.3f} |", flush=True)
            save_digit_grid(grid, run.info, root / f"digits-{name}-cond-cfg{w:g}.png")


def class_accuracy(run: Run, clf, cfg_scale: float) -> tuple[float, torch.Tensor]:
    """Mean accuracy under ``clf`` of guided samples of each digit class, and ten samples of each (a grid)."""
    accs, grid = [], []
    for c, x in class_samples(run, cfg_scale):
        accs.append(float((clf.predict(x) == c).mean()))
        grid.append(x[:10])
    return float(np.mean(accs)), torch.cat(grid)
