"""Contrastive divergence at the defaults on 2-D data sets energen does not ship, given as ``.npy`` files as a
user would: pinwheel (the FFJORD toy), scikit-learn's swiss roll (x, z / 5) and two circles (factor 0.5, noise
0.05, x 2). Trains on 20,000 points (``<out>/<name>.npy``) for 4,000 steps and prints sliced W1 (data
standard deviations) of 5,000 samples against 10,000 fresh points: the default sampler from noise at K = 200
(the default) and 1,000 steps, Langevin from noise at 200; exp(-E), "off" and "regions" as in ``cd.py``;
floor: two fresh draws.

    python benchmarks/cd_unseen.py --out bench-runs                  # ~12 minutes a data set, 1 CPU thread
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import density_samples, off_support, region_mass, sw1, trained


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    k = 5
    label = rng.integers(0, k, n)
    f = rng.standard_normal((n, 2)) * [0.3, 0.1]
    f[:, 0] += 1.0
    angle = np.linspace(0, 2 * np.pi, k, endpoint=False)[label] + 0.25 * np.exp(f[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return 2 * np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], 1)


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    return make_swiss_roll(n, noise=1.0, random_state=int(rng.integers(1 << 30)))[0][:, [0, 2]] / 5


def circles(n: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.datasets import make_circles

    return make_circles(n, factor=0.5, noise=0.05, random_state=int(rng.integers(1 << 30)))[0] * 2


SETS = {"pinwheel": pinwheel, "swissroll": swissroll, "circles": circles}

p = argparse.ArgumentParser()
p.add_argument("--out", default="bench-runs")
p.add_argument("--data", nargs="+", default=list(SETS), choices=list(SETS))
a = p.parse_args()
root = Path(a.out)
root.mkdir(parents=True, exist_ok=True)
print("| data | K = 200 | K = 1000 | off at 1000 | langevin, K = 200 | exp(-E) | off | regions | floor |")
print("|---|---|---|---|---|---|---|---|---|")
for name in a.data:
    draw = SETS[name]
    path = root / f"{name}.npy"
    if not path.exists():
        np.save(path, draw(20_000, np.random.default_rng(0)).astype(np.float32))
    ref = torch.tensor(draw(10_000, np.random.default_rng(1)), dtype=torch.float32)
    fresh = torch.tensor(draw(5_000, np.random.default_rng(2)), dtype=torch.float32)
    run, _ = trained(root, f"{name}-cd", method="cd", data=str(path), steps=4000)
    xd = density_samples(run, 5000, seed=1)
    cells = []
    for k in (200, 1000):
        x, _ = run.sample(5000, seed=1, settings=run.default_sampler.with_options(steps=k))
        cells.append(f"{sw1(run, x, ref):.4f}")
    cells.append(f"{off_support(run, x, ref, fresh):.3f}")
    x, _ = run.sample(5000, seed=1, settings=run.default_sampler.as_chain().with_options(steps=200))
    cells += [f"{sw1(run, x, ref):.4f}", f"{sw1(run, xd, ref):.4f}", f"{off_support(run, xd, ref, fresh):.3f}",
              "{:.2f}-{:.2f}".format(*region_mass(xd, ref)), f"{sw1(run, fresh, ref):.4f}"]  # fmt: skip
    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
